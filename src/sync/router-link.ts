import { createNanoEvents, type Unsubscribe } from 'nanoevents'
import { abortableSleep } from '../core/abortable-sleep.js'
import { isMallaError, MallaError } from '../core/errors.js'
import { FLAVOURS } from '../core/flavours.js'
import type { Logger } from '../core/log.js'
import { silentLogger } from '../core/log.js'
import { parseTable, serializeTable } from '../core/schema.js'
import type { Entry, TypeName } from '../core/types.js'
import type { Replica } from '../replica/replica.js'
import type { TableRef } from '../storage/table-store.js'
import { followChanges, type FeedEvent } from '../transport/change-feed-client.js'
import type { HttpPoster } from '../transport/http-poster.js'
import { PushSocketClient, type SocketFactory } from '../transport/push-socket-client.js'
import { SyncEngine } from './engine.js'
import { sendWhole } from './initiator.js'
import { HttpLink } from './links/http-link.js'
import type { LinkTraffic, ReceivedReply, Speaks, SyncLink } from './links/link.js'
import type { SyncRequest } from './messages.js'

export type RouterKind = 'malla' | 'libremesh'

/** How long stop() waits for the sends in flight (a last withdrawal) before it gives up on them. */
const STOP_GRACE_MS = 3000

export interface RouterLinkOptions {
  /** The leaf's own replica: its `author` marks the entries this link sends. */
  readonly replica: Replica
  /** The router's base URL (a page uses its own origin). */
  readonly base: string
  readonly types: readonly TypeName[]
  readonly poster: HttpPoster
  /** A plain LibreMesh router has no change feed: its table is fetched this often (default 1000 ms). */
  readonly pollMs?: number
  /** How often a malla router's tables are reconciled, to repair what a dropped feed missed (default 30 s). */
  readonly repairMs?: number
  readonly timeoutMs?: number
  /**
   * Opens WebSockets (a page's own `WebSocket`, `ws` in Node): with one, pushes to a malla router go as
   * frames on one open socket (docs/protocol.md §10.1), a few milliseconds sooner than a browser's fetch().
   * Without one, or while it is down, they go as POSTs.
   */
  readonly socket?: SocketFactory
  readonly log?: Logger
}

export interface RouterLinkEvents {
  /** The router answered the first exchange; `kind` says whether it speaks malla. */
  ready(kind: RouterKind): void
  /** An exchange or the feed failed; the link keeps trying. */
  trouble(error: Error): void
}

/**
 * Keeps a leaf (a page, a Node peer) in step with the one router it hangs off, for a few types: the one sync
 * engine with the leaf policy, over one link to the router.
 *
 * A leaf is not a router: it never relays. It sends only the entries it wrote itself, which is a valid
 * LibreMesh sync (a partial table, merged key by key) and keeps it from bringing back entries that the
 * routers have already aged out. It takes in everything the router has:
 * - from a malla daemon, through the change feed (pushed as it happens, resumed after drops), after one
 *   full read; its own writes go out at once as malla pushes (on the push socket when open), and every
 *   `repairMs` each table is reconciled;
 * - from a plain LibreMesh router (Lua CGI, no feed), by posting its own entries every `pollMs` and
 *   merging the whole table each answer carries: slower, but it needs nothing on the router but the CGI.
 */
export class RouterLink {
  private readonly emitter = createNanoEvents<RouterLinkEvents>()
  private readonly log: Logger
  private readonly abort = new AbortController()
  private readonly link: LeafLink
  private readonly engine: SyncEngine
  private kind: RouterKind | undefined
  private timer: ReturnType<typeof setInterval> | undefined

  constructor(private readonly options: RouterLinkOptions) {
    this.log = options.log ?? silentLogger
    const types = new Set<string>(options.types)
    this.link = new LeafLink(options)
    this.engine = new SyncEngine({
      replica: options.replica,
      policy: { role: 'leaf', carries: (ref) => ref.flavour === 'ttl' && types.has(ref.type), tables: options.types.map((type) => ({ flavour: 'ttl', type })) },
      log: this.log,
      debounceMs: 0,
      // A router that failed is asked again soon: a person waits on a page's signaling.
      minBackoffMs: 250,
      maxBackoffMs: 5000,
      onLinkState: () => {
        const error = this.engine.health(this.link).lastError
        if (error !== undefined) this.trouble(new MallaError('PEER', error))
      },
    })
  }

  on<E extends keyof RouterLinkEvents>(event: E, listener: RouterLinkEvents[E]): Unsubscribe {
    return this.emitter.on(event, listener)
  }

  get routerKind(): RouterKind | undefined {
    return this.kind
  }

  /** What this leaf's exchanges with its router carried, both ways. */
  traffic(): LinkTraffic {
    return this.engine.traffic()
  }

  /**
   * Reads every type from the router and starts following it. Resolves with what the router speaks once it
   * has answered. A router that is slow or away is asked again (after 250 ms, doubling up to 5 s; each failure
   * is reported as `trouble`) until it answers: a busy router must not turn a join into a failure. Rejects
   * (PEER) only when `signal` aborts first, or the link is stopped.
   */
  async start(signal?: AbortSignal): Promise<RouterKind> {
    const { replica, types } = this.options
    this.engine.start()
    // Own writes made while the first exchange runs were not in it: they are sent once it is done.
    let wroteMeanwhile = false
    const offWrites = replica.on('applied', (e) => {
      // Its own inserts (merges of what the router answered come with the router as their source).
      wroteMeanwhile ||= e.keys.some((k) => e.sources?.get(k) === undefined && (e.table.get(k) as Entry | undefined)?.author === replica.author)
    })
    for (let delay = 250; ; delay = Math.min(5000, delay * 2)) {
      try {
        // An ordinary sync of this leaf's own entries: any router answers it with its whole table.
        await Promise.all(types.map((type) => this.firstExchange({ flavour: 'ttl', type })))
        break
      } catch (e) {
        if (this.abort.signal.aborted || signal?.aborted) {
          offWrites()
          await this.engine.stop()
          throw new MallaError('PEER', `no answer from the router at ${this.options.base}: ${(e as Error).message}`, { cause: e })
        }
        this.trouble(e as Error)
        await abortableSleep(delay, signal)
      }
    }
    offWrites()
    this.kind = this.link.speaks === 'malla' ? 'malla' : 'libremesh'
    this.engine.add(this.link, false)
    if (wroteMeanwhile) for (const type of types) this.send(type)
    if (this.kind === 'malla') {
      this.link.openSocket()
      this.follow()
      this.timer = setInterval(() => void this.engine.repairAll(), this.options.repairMs ?? 30_000)
    } else {
      this.timer = setInterval(() => void this.engine.repairAll(), this.options.pollMs ?? 1000)
    }
    this.log.info('router link ready', { router: this.options.base, kind: this.kind })
    this.emitter.emit('ready', this.kind)
    return this.kind
  }

  /** Stops following; sends already started are awaited (a last withdrawal still reaches the router), within a bound. */
  async stop(): Promise<void> {
    clearInterval(this.timer)
    let timer: ReturnType<typeof setTimeout> | undefined
    // What is queued (a last withdrawal) still goes; bounded: a router that went away must not keep a leaving page waiting.
    await Promise.race([this.engine.flush().then(() => this.engine.stop()), new Promise((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS)))])
    clearTimeout(timer)
    // Stops the queues at once if the grace ran out; an exchange still in flight ends by its own timeout.
    void this.engine.stop()
    this.link.close()
    this.abort.abort()
  }

  /** Syncs `type` with the router now (its own entries out, the router's copy in). */
  send(type: TypeName): void {
    if (this.abort.signal.aborted) return
    void this.engine.syncNow({ flavour: 'ttl', type })
  }

  private async firstExchange(ref: TableRef): Promise<void> {
    const { replica } = this.options
    const own = new Map<string, object>()
    for (const [key, entry] of (await replica.read(ref)).table) if ((entry as Entry).author === replica.author) own.set(key, entry)
    const outcome = await sendWhole(replica, this.link, ref, own)
    if (outcome.skipped) this.log.warn('router answer unusable', { router: this.options.base, type: ref.type, reason: outcome.skipped })
  }

  private follow(): void {
    void followChanges(this.options.base, (e) => this.onFeed(e), {
      types: this.options.types,
      signal: this.abort.signal,
      onRetry: (error) => this.trouble(error),
    })
  }

  private onFeed(e: FeedEvent): void {
    // Changes between the first read and this connection, or missed ones (reset): repair everything; the
    // feed goes on from its cursor, so nothing after it is lost.
    if (e.event === 'hello' || e.event === 'reset') return void this.engine.repairAll()
    if (e.event !== 'change' || e.flavour !== 'ttl' || !this.options.types.includes(e.type)) return
    const present = Object.entries(e.entries).filter(([, entry]) => entry !== null)
    if (present.length === 0) return
    let table
    try {
      table = parseTable(Object.fromEntries(present), 'change feed')
    } catch (err) {
      // A router that sends garbage is a router problem, not a reason to stop.
      if (isMallaError(err, 'BAD_INPUT')) return this.trouble(err)
      throw err
    }
    // With the router as their source: the leaf policy sends nothing back there anyway, and the overlay
    // sees where they came from.
    void this.options.replica.mergeInto({ flavour: 'ttl', type: e.type }, table, this.link.id).catch((err: Error) => this.trouble(err))
  }

  private trouble(error: Error): void {
    if (this.abort.signal.aborted) return
    this.log.warn('router link trouble', { router: this.options.base, error: error.message })
    this.emitter.emit('trouble', error)
  }
}

/**
 * The leaf's link to its router: LibreMesh's endpoint (and `/malla/v1/reconcile`) over HTTP, with pushes on the
 * push socket while it is open (docs/protocol.md §10.1).
 */
class LeafLink implements SyncLink {
  private readonly http: HttpLink
  private socket: PushSocketClient | undefined
  private readonly socketTraffic = { exchanges: 0, bytesSent: 0, bytesReceived: 0 }

  constructor(private readonly options: RouterLinkOptions) {
    this.http = new HttpLink({ base: options.base, poster: options.poster, timeoutMs: options.timeoutMs ?? 3000 })
  }

  get id(): string {
    return this.http.id
  }

  get label(): string {
    return this.http.label
  }

  get speaks(): Speaks | undefined {
    return this.http.speaks
  }

  get name(): string | undefined {
    return this.http.name
  }

  get traffic(): LinkTraffic {
    const t = this.http.traffic
    return { exchanges: t.exchanges + this.socketTraffic.exchanges, bytesSent: t.bytesSent + this.socketTraffic.bytesSent, bytesReceived: t.bytesReceived + this.socketTraffic.bytesReceived }
  }

  openSocket(): void {
    if (!this.options.socket || this.socket) return
    this.socket = new PushSocketClient({ base: this.options.base, open: this.options.socket, timeoutMs: this.options.timeoutMs ?? 3000, log: this.options.log ?? silentLogger })
    this.socket.start()
  }

  /** A push goes on the socket when it is open, by POST when it is not or when the socket fails on it. */
  async request(request: SyncRequest): Promise<ReceivedReply> {
    if (request.t === 'push' && this.socket?.ready) {
      const text = serializeTable(request.entries)
      try {
        const corrections = await this.socket.push(request.ref.type, text)
        this.socketTraffic.exchanges++
        this.socketTraffic.bytesSent += text.length
        try {
          return { t: 'corrections', entries: FLAVOURS.ttl.parse(corrections, `push answer from ${this.options.base}`) }
        } catch (e) {
          if (isMallaError(e, 'BAD_INPUT')) return { t: 'empty', reason: e.message }
          throw e
        }
      } catch (e) {
        ;(this.options.log ?? silentLogger).debug('push socket failed; posting instead', { router: this.options.base, error: (e as Error).message })
      }
    }
    return this.http.request(request)
  }

  close(): void {
    this.socket?.stop()
    this.http.close()
  }
}
