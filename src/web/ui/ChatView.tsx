import { useEffect, useRef, useState } from 'preact/hooks'
import { formatTime, t } from '../i18n.js'
import type { Session } from '../app/session.js'
import { colourOf } from './PeopleView.js'

export function ChatView({ session }: { session: Session }) {
  const { chat } = session
  const lines = chat.lines.value
  const acks = chat.acks.value
  session.people.list.value // re-render when people come and go: "reached everyone" depends on them
  const [text, setText] = useState('')
  const list = useRef<HTMLOListElement>(null)
  useEffect(() => {
    const el = list.current
    if (el) el.scrollTop = el.scrollHeight
  }, [lines.length, lines.at(-1)?.key])
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
              {l.mine ? (
                <span class="mark" title={acks && chat.reachedEveryone(l.key) ? t('chat.reached') : t('chat.sent')} data-reached={String(chat.reachedEveryone(l.key))}>
                  {chat.reachedEveryone(l.key) ? '✓✓' : '✓'}
                </span>
              ) : null}
            </span>
            <span class="line-text">{l.text}</span>
          </li>
        ))}
      </ol>
      <form
        class="composer"
        onSubmit={(e) => {
          e.preventDefault()
          const said = text
          setText('')
          void chat.say(said)
        }}
      >
        <input name="chat" value={text} maxLength={2000} placeholder={t('chat.placeholder')} onInput={(e) => setText(e.currentTarget.value)} autoComplete="off" />
        <button type="submit">{t('chat.send')}</button>
      </form>
    </section>
  )
}
