import { useState } from 'preact/hooks'
import { t } from '../i18n.js'
import { shortCode } from '../app/contacts.js'
import type { Session } from '../app/session.js'
import { IdentityCard, VerifyPanel } from './IdentityCard.js'
import { NameForm } from './NameForm.js'

export function PeopleView({ session, onMessage, onFile, name, onRename }: { session: Session; onMessage(id: string): void; onFile(id: string): void; name: string; onRename(name: string): void }) {
  const people = session.people.list.value
  const others = people.filter((p) => !p.me)
  const [verifying, setVerifying] = useState<string | undefined>()
  return (
    <section class="people">
      <h1>{t('people.title')}</h1>
      <NameForm compact initial={name} onName={onRename} />
      <ul class="person-list">
        {people.map((p) => (
          <li class={`person${p.present ? '' : ' away'}${p.me ? ' me' : ''}${p.verified ? ' verified' : ''}`} data-peer={p.id} data-fingerprint={p.fingerprint} key={p.id}>
            <span class="avatar" aria-hidden="true" style={{ background: colourOf(p.id) }}>
              {initialOf(p.name)}
            </span>
            <div class="who">
              <strong class="person-name">
                {p.name}
                {p.me ? <em> ({t('people.you')})</em> : null}
                {p.verified ? (
                  <span class="verified-mark" title={t('id.verified')} data-testid="verified">
                    {' '}✓ {t('id.verified')}
                  </span>
                ) : null}
              </strong>
              <span class="meta">
                {p.router !== undefined ? t('people.behind', { router: p.router }) : t('people.router.unknown')}
                {p.me ? null : (
                  <>
                    {' · '}
                    <span class={p.direct ? 'tag direct' : 'tag'}>{!p.present ? t('people.away') : p.direct ? t('people.direct') : t('people.relayed')}</span>
                    {p.rttMs !== undefined ? ` · ${t('people.rtt', { ms: Math.round(p.rttMs) })}` : null}
                  </>
                )}
              </span>
              <span class="meta code">{p.fingerprint ? t('id.code', { code: shortCode(p.fingerprint) }) : t('id.noKey')}</span>
            </div>
            {p.me || !p.present ? null : (
              <div class="actions">
                <button type="button" onClick={() => onMessage(p.id)}>
                  {t('people.message')}
                </button>
                <button type="button" onClick={() => onFile(p.id)}>
                  {t('people.sendFile')}
                </button>
                {p.fingerprint ? (
                  <button type="button" data-testid="verify" onClick={() => setVerifying(verifying === p.id ? undefined : p.id)}>
                    {p.verified ? t('id.verified') : t('id.verify')}
                  </button>
                ) : null}
              </div>
            )}
            {verifying === p.id && p.fingerprint ? <VerifyPanel session={session} name={p.name} fingerprint={p.fingerprint} onClose={() => setVerifying(undefined)} /> : null}
          </li>
        ))}
      </ul>
      {others.length === 0 ? <p class="empty">{t('people.none')}</p> : null}
      <IdentityCard session={session} />
    </section>
  )
}

export function initialOf(name: string): string {
  return [...name.replace(/^#/, '')][0]?.toUpperCase() ?? '?'
}

/** A stable colour per person, so the same person looks the same in every view. */
export function colourOf(id: string): string {
  let h = 0
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0
  return `hsl(${h % 360} 55% 42%)`
}
