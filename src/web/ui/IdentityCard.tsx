import { useState } from 'preact/hooks'
import { t } from '../i18n.js'
import { groupedFingerprint } from '../app/contacts.js'
import type { Session } from '../app/session.js'

/**
 * The person's own key: their fingerprint (what others compare to verify them), and the key itself to take
 * elsewhere (GnuPG, another browser) or to bring from there. Importing replaces who this browser is, so the
 * page reloads to join again as that person.
 */
export function IdentityCard({ session }: { session: Session }) {
  const [error, setError] = useState<string | undefined>()
  const [busy, setBusy] = useState(false)
  const { identity } = session
  const exportKey = () => {
    const blob = new Blob([identity.exportSecret()], { type: 'application/pgp-keys' })
    const a = document.createElement('a')
    a.href = URL.createObjectURL(blob)
    a.download = `malla-${identity.fingerprint.slice(-16)}.asc`
    a.click()
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000)
  }
  const importKey = async (file: File | undefined) => {
    if (!file) return
    setBusy(true)
    setError(undefined)
    try {
      // A key is a few KB; anything much larger is not one.
      if (file.size > 256 * 1024) throw new Error(t('id.import.tooLarge'))
      await session.importKey(await file.text())
      location.reload()
    } catch (e) {
      setError((e as Error).message)
      setBusy(false)
    }
  }
  return (
    <section class="identity" aria-labelledby="identity-title">
      <h2 id="identity-title">{t('id.title')}</h2>
      <p class="fingerprint" data-testid="my-fingerprint">
        <span class="label">{t('id.fingerprint')}</span> <code>{groupedFingerprint(identity.fingerprint)}</code>
      </p>
      {session.identityKept ? null : <p class="warning">{t('id.notKept')}</p>}
      <div class="actions start">
        <button type="button" class="secondary" onClick={exportKey}>
          {t('id.export')}
        </button>
        <label class={busy ? 'file-button secondary disabled' : 'file-button secondary'}>
          {t('id.import')}
          <input type="file" accept=".asc,.gpg,.key,application/pgp-keys,text/plain" disabled={busy} onChange={(e) => void importKey(e.currentTarget.files?.[0])} />
        </label>
      </div>
      <p class="hint">{t('id.hint')}</p>
      {error ? <p class="warning" role="alert">{t('id.import.failed', { error })}</p> : null}
    </section>
  )
}

/** Comparing a person's fingerprint with what they read out from their screen, and marking them verified. */
export function VerifyPanel({ session, name, fingerprint, onClose }: { session: Session; name: string; fingerprint: string; onClose(): void }) {
  const verified = session.contacts.isVerified(fingerprint)
  return (
    <div class="verify" role="group" aria-label={t('id.verify.title', { name })}>
      <p>{t('id.verify.how', { name })}</p>
      <p class="fingerprint">
        <span class="label">{name}</span> <code data-testid="their-fingerprint">{groupedFingerprint(fingerprint)}</code>
      </p>
      <p class="fingerprint">
        <span class="label">{t('people.you')}</span> <code>{groupedFingerprint(session.identity.fingerprint)}</code>
      </p>
      <div class="actions start">
        {verified ? (
          <button type="button" class="secondary" onClick={() => (session.contacts.forget(fingerprint), onClose())}>
            {t('id.verify.forget')}
          </button>
        ) : (
          <button type="button" data-testid="mark-verified" onClick={() => (session.contacts.verify(fingerprint, name), onClose())}>
            {t('id.verify.match')}
          </button>
        )}
        <button type="button" class="secondary" onClick={onClose}>
          {t('id.verify.close')}
        </button>
      </div>
    </div>
  )
}
