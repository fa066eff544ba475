import { useSignal } from '@preact/signals'
import { useEffect, useState } from 'preact/hooks'
import { lang, safeStorage, setLang, t, type StringKey } from '../i18n.js'
import { DEFAULT_ROOM, startSession, type JoinState, type Session } from '../app/session.js'
import { ChatView } from './ChatView.js'
import { FilesView } from './FilesView.js'
import { Icon } from './Icon.js'
import { LazyMap } from './LazyMap.js'
import { MessagesView } from './MessagesView.js'
import { NameForm } from './NameForm.js'
import { PeopleView } from './PeopleView.js'
import { TablesView } from './TablesView.js'

export type View = 'people' | 'chat' | 'messages' | 'files' | 'map' | 'tables'
const VIEWS: readonly View[] = ['people', 'chat', 'messages', 'files', 'map', 'tables']
const NAME_KEY = 'malla.name'

/** The view in the address (`#chat`), so a reload or a shared link opens the same one. */
function viewFromHash(): View {
  const v = location.hash.slice(1)
  return (VIEWS as readonly string[]).includes(v) ? (v as View) : 'people'
}

function roomFromQuery(): string {
  const r = new URLSearchParams(location.search).get('room')
  return r && /^[A-Za-z0-9_-]{1,32}$/.test(r) ? r : DEFAULT_ROOM
}

export function App() {
  const [name, setNameState] = useState<string | undefined>(() => safeStorage()?.getItem(NAME_KEY) ?? undefined)
  const [session, setSession] = useState<Session | undefined>()
  const state = useSignal<JoinState>({ kind: 'joining' })
  const view = useSignal<View>(viewFromHash())
  // One person, one dm target chosen from People or Files.
  const dmPeer = useSignal<string | undefined>(undefined)
  const filePeer = useSignal<string | undefined>(undefined)
  lang.value // re-render on a language switch

  useEffect(() => {
    const onHash = () => (view.value = viewFromHash())
    addEventListener('hashchange', onHash)
    return () => removeEventListener('hashchange', onHash)
  }, [])

  useEffect(() => {
    if (name === undefined || session) return
    let cancelled = false
    state.value = { kind: 'joining' }
    startSession(roomFromQuery(), name).then(
      (s) => {
        if (cancelled) return void s.leave()
        setSession(s)
        state.value = { kind: 'joined' }
        ;(globalThis as { mallaSession?: Session }).mallaSession = s
      },
      (e: Error) => (state.value = { kind: 'failed', error: e.message }),
    )
    return () => {
      cancelled = true
    }
  }, [name === undefined])

  useEffect(() => {
    session?.chat.setReading(view.value === 'chat')
    const open = view.value === 'messages' && dmPeer.value !== undefined ? session?.messages.current(dmPeer.value) : undefined
    session?.messages.setOpen(open)
  }, [session, view.value, dmPeer.value])

  const go = (v: View) => {
    view.value = v
    history.replaceState(null, '', `#${v}`)
  }

  if (name === undefined) {
    return (
      <Shell session={undefined} state={state.value}>
        <NameForm
          onName={(n) => {
            safeStorage()?.setItem(NAME_KEY, n)
            setNameState(n)
          }}
        />
      </Shell>
    )
  }

  const badges: Partial<Record<View, number>> = session ? { chat: session.chat.unread.value, messages: session.messages.totalUnread() } : {}
  return (
    <Shell session={session} state={state.value}>
      <nav class="tabs" aria-label="views">
        {VIEWS.map((v) => (
          <button type="button" class={v === view.value ? 'tab active' : 'tab'} aria-current={v === view.value ? 'page' : undefined} data-view={v} onClick={() => go(v)}>
            <Icon view={v} />
            <span class="tab-label">{t(`nav.${v}` as StringKey)}</span>
            {badges[v] ? <span class="badge">{badges[v]}</span> : null}
          </button>
        ))}
      </nav>
      <main class="view" data-view={view.value}>
        {!session ? (
          <p class="status-line">{state.value.kind === 'failed' ? t('status.failed', { error: state.value.error }) : t('status.joining')}</p>
        ) : view.value === 'people' ? (
          <PeopleView
            session={session}
            onMessage={(id) => ((dmPeer.value = id), go('messages'))}
            onFile={(id) => ((filePeer.value = id), go('files'))}
            name={name}
            onRename={(n) => {
              safeStorage()?.setItem(NAME_KEY, n)
              setNameState(n)
              void session.setName(n)
            }}
          />
        ) : view.value === 'chat' ? (
          <ChatView session={session} />
        ) : view.value === 'messages' ? (
          <MessagesView session={session} peer={dmPeer} />
        ) : view.value === 'files' ? (
          <FilesView session={session} peer={filePeer} />
        ) : view.value === 'map' ? (
          <LazyMap session={session} />
        ) : (
          <TablesView session={session} />
        )}
      </main>
    </Shell>
  )
}

function Shell({ session, state, children }: { session: Session | undefined; state: JoinState; children: preact.ComponentChildren }) {
  const connected = session?.connected.value ?? 0
  const present = session ? session.people.others().length : 0
  const router = session?.room.router
  const status = !session ? (state.kind === 'failed' ? t('status.failed', { error: state.error }) : undefined) : connected === 0 && present === 0 ? t('status.alone') : t('status.connected', { n: connected, m: present + 1 })
  return (
    <div class="shell">
      <header class="top">
        <div class="brand">
          <img src="./favicon.svg" alt="" width="28" height="28" />
          <strong>{t('app.title')}</strong>
          {router ? <span class="router-name">{router.kind === 'malla' ? t('router.malla', { name: router.name ?? '' }) : t('router.libremesh')}</span> : null}
        </div>
        <div class="top-right">
          {status ? (
            <span class={connected > 0 ? 'conn on' : 'conn'} data-testid="status" title={status}>
              <span class="conn-long">{status}</span>
              {session ? <span class="conn-short">{t('status.short', { n: connected, m: present + 1 })}</span> : null}
            </span>
          ) : null}
          <button type="button" class="lang" onClick={() => setLang(lang.value === 'es' ? 'en' : 'es')}>
            {t('lang.switch')}
          </button>
        </div>
      </header>
      <Notices session={session} />
      {children}
    </div>
  )
}

/** What is slower or missing here, said once per visit; closing it keeps it closed until the tab is. */
function Notices({ session }: { session: Session | undefined }) {
  const [closed, setClosed] = useState(() => safeStorage('session')?.getItem('malla.notices') === 'closed')
  const notes: string[] = []
  if (!globalThis.isSecureContext) notes.push(t('notice.insecure'))
  if (session?.room.router.kind === 'libremesh') notes.push(t('notice.libremesh'))
  const mismatches = session?.mismatches.value ?? 0
  // Someone tampering is said every time, and cannot be closed away.
  if (mismatches > 0)
    return (
      <aside class="notices alarm" role="alert" data-testid="mismatch">
        <div>
          <p>{t('notice.mismatch', { n: mismatches })}</p>
        </div>
      </aside>
    )
  if (notes.length === 0 || closed) return null
  return (
    <aside class="notices" role="note">
      <div>
        {notes.map((n) => (
          <p>{n}</p>
        ))}
      </div>
      <button
        type="button"
        class="close"
        aria-label={t('notice.close')}
        onClick={() => {
          safeStorage('session')?.setItem('malla.notices', 'closed')
          setClosed(true)
        }}
      >
        ×
      </button>
    </aside>
  )
}
