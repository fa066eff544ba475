import type { Signal } from '@preact/signals'
import { formatTime, t } from '../i18n.js'
import type { Session } from '../app/session.js'
import { Composer } from './Composer.js'
import { Icon } from './Icon.js'
import { useStickToBottom } from './stick-to-bottom.js'

export function MessagesView({ session, peer }: { session: Session; peer: Signal<string | undefined> }) {
  const { messages, people } = session
  const conversations = messages.conversations.value
  const unread = messages.unread.value
  const chosen = peer.value === undefined ? undefined : messages.current(peer.value)
  // Everyone present, whoever wrote before and the one chosen (they may have left since: a message waits for them).
  const ids = [...new Set([...people.others().map((p) => p.id), ...conversations.keys(), ...(chosen ? [chosen] : [])])]
  const list = chosen ? (conversations.get(chosen) ?? []) : []
  const last = list.at(-1)
  const box = useStickToBottom<HTMLOListElement>(list.length, `${chosen} ${last?.mine ? last.id : ''}`)
  return (
    <section class="messages">
      <h1>{t('dm.title')}</h1>
      <div class="split">
        <ul class="contacts">
          {ids.map((id) => (
            <li key={id}>
              <button type="button" class={id === chosen ? 'contact active' : 'contact'} data-peer={id} onClick={() => (peer.value = id)}>
                {messages.nameOf(id)}
                {unread.get(id) ? <span class="badge">{unread.get(id)}</span> : null}
              </button>
            </li>
          ))}
        </ul>
        <div class="conversation">
          {chosen === undefined ? (
            <p class="empty">{t('dm.pick')}</p>
          ) : (
            <>
              <ol class="lines" ref={box}>
                {list.map((m) => (
                  <li class={m.mine ? 'line mine' : 'line'} key={`${m.mine}-${m.id}`}>
                    <span class="line-head">
                      <time>{formatTime(m.at)}</time>
                      {m.sealed ? (
                        <span class="sealed" title={t('dm.sealed')} aria-label={t('dm.sealed')}>
                          <Icon view="lock" size={12} />
                        </span>
                      ) : null}
                      {m.mine ? <span class={`mark ${m.state}`}>{t(`dm.${m.state === 'received' ? 'pending' : m.state}`)}</span> : null}
                    </span>
                    <span class="line-text">{m.text}</span>
                  </li>
                ))}
              </ol>
              <Composer name="dm" maxLength={4000} placeholder={t('dm.placeholder', { name: messages.nameOf(chosen) })} onSend={(text) => void messages.send(chosen, text)} />
            </>
          )}
        </div>
      </div>
    </section>
  )
}
