import { formatTime, t } from '../i18n.js'
import type { Session } from '../app/session.js'
import { Composer } from './Composer.js'
import { colourOf } from './PeopleView.js'
import { useStickToBottom } from './stick-to-bottom.js'

export function ChatView({ session }: { session: Session }) {
  const { chat } = session
  const lines = chat.lines.value
  const acks = chat.acks.value
  session.people.list.value // re-render when people come and go: "reached everyone" depends on them
  const last = lines.at(-1)
  // A line of one's own brings the list to the end, wherever one was reading.
  const list = useStickToBottom<HTMLOListElement>(`${lines.length} ${last?.key}`, last?.mine ? last.key : undefined)
  return (
    <section class="chat">
      <h1>{t('chat.title')}</h1>
      <ol class="lines" ref={list} aria-live="polite">
        {chat.hidden.value > 0 ? <li class="more">{t('chat.more', { n: chat.hidden.value })}</li> : null}
        {lines.length === 0 ? <li class="empty">{t('chat.empty')}</li> : null}
        {lines.map((l) => (
          <li class={l.mine ? 'line mine' : 'line'} key={l.key} data-key={l.key}>
            <span class="line-head">
              <strong style={{ color: colourOf(l.from) }}>{l.name}</strong> <time>{formatTime(l.at)}</time>
              {l.mine ? <Mark reached={acks !== undefined && chat.reachedEveryone(l.key)} /> : null}
            </span>
            <span class="line-text">{l.text}</span>
          </li>
        ))}
      </ol>
      <Composer name="chat" maxLength={2000} placeholder={t('chat.placeholder')} onSend={(text) => void chat.say(text)} />
    </section>
  )
}

/** One tick once the line is written, two once everyone present has it. */
function Mark({ reached }: { reached: boolean }) {
  return (
    <span class="mark" title={reached ? t('chat.reached') : t('chat.sent')} data-reached={String(reached)}>
      {reached ? '✓✓' : '✓'}
    </span>
  )
}
