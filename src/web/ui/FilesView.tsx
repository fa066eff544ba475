import type { Signal } from '@preact/signals'
import { useRef, useState } from 'preact/hooks'
import { formatBytes, formatDuration, t } from '../i18n.js'
import type { Session } from '../app/session.js'

export function FilesView({ session, peer }: { session: Session; peer: Signal<string | undefined> }) {
  const { files, people } = session
  const others = people.others()
  const [file, setFile] = useState<File | undefined>()
  const input = useRef<HTMLInputElement>(null)
  const to = peer.value ?? others[0]?.id
  return (
    <section class="files">
      <h1>{t('files.title')}</h1>
      <form
        class="transfer-form"
        onSubmit={(e) => {
          e.preventDefault()
          if (!file || !to) return
          void files.send(to, file)
          setFile(undefined)
          if (input.current) input.current.value = ''
        }}
      >
        <label>
          {t('files.to')}{' '}
          <select name="to" value={to} onChange={(e) => (peer.value = e.currentTarget.value)}>
            {others.map((p) => (
              <option value={p.id} key={p.id}>
                {p.name}
              </option>
            ))}
          </select>
        </label>
        <input ref={input} type="file" name="file" aria-label={t('files.choose')} onChange={(e) => setFile(e.currentTarget.files?.[0])} />
        <button type="submit" disabled={!file || !to}>
          {t('files.send')}
        </button>
      </form>
      {files.transfers.value.length === 0 ? <p class="empty">{t('files.none')}</p> : null}
      <ul class="transfers">
        {files.transfers.value.map((v) => {
          const who = people.nameOf(v.peer)
          return (
            <li class="transfer" key={v.key} data-transfer={v.key} data-state={v.state} data-direction={v.direction}>
              <div class="transfer-head">
                <span aria-hidden="true">{v.direction === 'in' ? '⬇' : '⬆'}</span>
                <strong>{v.name}</strong>
                <span class="meta">
                  {formatBytes(v.size)} · {v.direction === 'in' ? '← ' : '→ '}
                  {who}
                </span>
              </div>
              {v.direction === 'in' && v.state === 'offered' ? <span class="state">{t('files.incoming', { name: who, file: v.name, size: formatBytes(v.size) })}</span> : null}
              {v.state === 'active' || v.state === 'done' ? <progress max={v.size || 1} value={v.bytes} /> : null}
              <span class={`state ${v.state}`}>
                {v.state === 'connecting'
                  ? t('files.connecting', { name: who })
                  : v.state === 'offered'
                    ? v.direction === 'out'
                      ? t('files.waiting', { name: who })
                      : ''
                    : v.state === 'active'
                      ? `${formatBytes(v.bytes)} / ${formatBytes(v.size)} · ${t('files.speed', { speed: formatBytes(v.bytesPerSecond), left: formatDuration(v.secondsLeft) })}`
                      : v.state === 'done'
                        ? t('files.done')
                        : v.state === 'cancelled'
                          ? t('files.cancelled')
                          : t('files.failed', { reason: v.reason ?? '' })}
              </span>
              <div class="buttons">
                {v.direction === 'in' && v.state === 'offered' ? (
                  <>
                    <button type="button" data-action="accept" onClick={() => files.accept(v.key)}>
                      {t('files.accept')}
                    </button>
                    <button type="button" class="secondary" data-action="decline" onClick={() => files.decline(v.key)}>
                      {t('files.decline')}
                    </button>
                  </>
                ) : null}
                {v.state === 'active' || (v.state === 'offered' && v.direction === 'out') ? (
                  <button type="button" class="secondary" data-action="cancel" onClick={() => files.cancel(v.key)}>
                    {t('files.cancel')}
                  </button>
                ) : null}
                {v.url ? (
                  <a class="save" href={v.url} download={v.name} data-action="save">
                    {t('files.save')}
                  </a>
                ) : null}
                {v.state === 'done' || v.state === 'cancelled' || v.state === 'failed' ? (
                  <button type="button" class="secondary" data-action="dismiss" onClick={() => files.dismiss(v.key)}>
                    {t('files.dismiss')}
                  </button>
                ) : null}
              </div>
            </li>
          )
        })}
      </ul>
    </section>
  )
}
