import { t } from '../i18n.js'
import type { Session } from '../app/session.js'
import { NameForm } from './NameForm.js'

export function PeopleView({ session, onMessage, onFile, name, onRename }: { session: Session; onMessage(id: string): void; onFile(id: string): void; name: string; onRename(name: string): void }) {
  const people = session.people.list.value
  const others = people.filter((p) => !p.me)
  return (
    <section class="people">
      <h1>{t('people.title')}</h1>
      <NameForm compact initial={name} onName={onRename} />
      <ul class="person-list">
        {people.map((p) => (
          <li class={`person${p.present ? '' : ' away'}${p.me ? ' me' : ''}`} data-peer={p.id} key={p.id}>
            <span class="avatar" aria-hidden="true" style={{ background: colourOf(p.id) }}>
              {initialOf(p.name)}
            </span>
            <div class="who">
              <strong class="person-name">
                {p.name}
                {p.me ? <em> ({t('people.you')})</em> : null}
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
            </div>
            {p.me || !p.present ? null : (
              <div class="actions">
                <button type="button" onClick={() => onMessage(p.id)}>
                  {t('people.message')}
                </button>
                <button type="button" onClick={() => onFile(p.id)}>
                  {t('people.sendFile')}
                </button>
              </div>
            )}
          </li>
        ))}
      </ul>
      {others.length === 0 ? <p class="empty">{t('people.none')}</p> : null}
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
