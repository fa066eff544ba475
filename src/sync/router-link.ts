import { createNanoEvents, type Unsubscribe } from 'nanoevents'
import { isMallaError, MallaError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import { silentLogger } from '../core/log.js'
import { parseTable, serializeTable } from '../core/schema.js'
import type { Entry, TypeName } from '../core/types.js'
import type { Replica } from '../replica/replica.js'
import { followChanges, type FeedEvent } from '../transport/change-feed-client.js'
import type { HttpPoster } from '../transport/http-poster.js'
import { PushSocketClient, type SocketFactory } from '../transport/push-socket-client.js'
import { endpointUrl } from './links/http-wire.js'
import { exchangeTable, type ExchangeReply } from './full-table-sync.js'

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
  /** How often a malla router's tables are read whole again, to repair what a dropped feed missed (default 30 s). */
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
 * Keeps a leaf (a page, a Node peer) in step with the one router it hangs off, for a few types.
 *
 * A leaf is not a router: it never relays. It sends only the entries it wrote itself, which is a valid
 * LibreMesh sync (a partial table, merged key by key) and keeps it from bringing back entries that the
 * routers have already aged out. It takes in everything the router has:
 * - from a malla daemon, through the change feed (pushed as it happens, resumed after drops), after one
 *   full read; its own writes go out at once as malla pushes;
 * - from a plain LibreMesh router (Lua CGI, no feed), by posting its own entries every `pollMs` and
 *   merging the whole table each answer carries: slower, but it needs nothing on the router but the CGI.
 */
export class RouterLink {
  private readonly emitter = createNanoEvents<RouterLinkEvents>()
  private readonly log: Logger
  private readonly abort = new AbortController()
  private kind: RouterKind | undefined
  private pushSocket: PushSocketClient | undefined
  private offApplied: Unsubscribe | undefined
  private timer: ReturnType<typeof setInterval> | undefined
  /**
   * Per type, to a malla router: entries waiting to be pushed, and the push loop in flight. One push per
   * type at a time, carrying everything that came meanwhile: a page has few connections to its router (a
   * browser allows 6 per host, the feed holds one), and a push that waited in the browser's queue past its
   * deadline would leave an answer undelivered until the next repair.
   */
  private readonly pushing = new Map<TypeName, { pending: Map<string, object>; running: Promise<void> }>()
  /** Per type: the full exchange in flight and whether another must follow it (exchanges of one type never overlap). */
  private readonly sending = new Map<TypeName, { running: Promise<void>; again: boolean }>()

  constructor(private readonly options: RouterLinkOptions) {
    this.log = options.log ?? silentLogger
  }

  on<E extends keyof RouterLinkEvents>(event: E, listener: RouterLinkEvents[E]): Unsubscribe {
    return this.emitter.on(event, listener)
  }

  get routerKind(): RouterKind | undefined {
    return this.kind
  }

  /**
   * Reads every type from the router and starts following it. Resolves with what the router speaks once it
   * has answered. A router that is slow or away is asked again (after 250 ms, doubling up to 5 s; each failure
   * is reported as `trouble`) until it answers: a busy router must not turn a join into a failure. Rejects
   * (PEER) only when `signal` aborts first, or the link is stopped.
   */
  async start(signal?: AbortSignal): Promise<RouterKind> {
    const { replica, types } = this.options
    this.offApplied = replica.on('applied', (event) => {
      if (event.origin !== 'local' || !types.includes(event.type)) return
      const own = new Map<string, object>()
      for (const k of event.keys) {
        const entry = event.table.get(k) as Entry | undefined
        if (entry?.author === replica.author) own.set(k, entry)
      }
      if (own.size === 0) return
      // To a malla router the new entries go at once, straight from the event: a signaling answer is
      // waited for by a person. A LibreMesh router gets this leaf's whole own set (one send at a time).
      if (this.kind === 'malla') this.queuePush(event.type, own)
      else this.send(event.type)
    })
    let replies: ExchangeReply[]
    for (let delay = 250; ; delay = Math.min(5000, delay * 2)) {
      try {
        replies = await Promise.all(types.map((type) => this.exchange(type)))
        break
      } catch (e) {
        if (this.abort.signal.aborted || signal?.aborted) {
          this.offApplied?.()
          throw new MallaError('PEER', `no answer from the router at ${this.options.base}: ${(e as Error).message}`, { cause: e })
        }
        this.trouble(e as Error)
        await abortableSleep(delay, signal)
      }
    }
    this.kind = replies.every((r) => r.malla) ? 'malla' : 'libremesh'
    if (this.kind === 'malla') {
      if (this.options.socket) {
        this.pushSocket = new PushSocketClient({ base: this.options.base, open: this.options.socket, timeoutMs: this.options.timeoutMs ?? 3000, log: this.log })
        this.pushSocket.start()
      }
      this.follow()
      this.timer = setInterval(() => this.readAll(), this.options.repairMs ?? 30_000)
    } else {
      this.timer = setInterval(() => this.readAll(), this.options.pollMs ?? 1000)
    }
    this.log.info('router link ready', { router: this.options.base, kind: this.kind })
    this.emitter.emit('ready', this.kind)
    return this.kind
  }

  /** Stops following; sends already started are awaited, so a last withdrawal still reaches the router. */
  async stop(): Promise<void> {
    this.offApplied?.()
    clearInterval(this.timer)
    // Bounded: a router that went away must not keep a leaving page waiting.
    const settled = Promise.allSettled([...this.sending.values()].map((s) => s.running).concat([...this.pushing.values()].map((p) => p.running)))
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([settled, new Promise((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS)))])
    clearTimeout(timer)
    this.pushSocket?.stop()
    this.abort.abort()
  }

  /**
   * Sends this leaf's own entries of `type` and merges the router's whole table from the answer: now, and
   * once more after the exchange in flight if there is one (exchanges of one type never overlap).
   */
  send(type: TypeName): void {
    if (this.abort.signal.aborted) return
    const busy = this.sending.get(type)
    if (busy) {
      busy.again = true
      return
    }
    const slot = { running: Promise.resolve(), again: false }
    slot.running = (async () => {
      do {
        slot.again = false
        await this.exchange(type).catch((e: Error) => this.trouble(e))
      } while (slot.again && !this.abort.signal.aborted)
      this.sending.delete(type)
    })()
    this.sending.set(type, slot)
  }

  private readAll(): void {
    for (const type of this.options.types) this.send(type)
  }

  /** All of this leaf's own entries of `type`, as an ordinary sync: any router answers its whole table. */
  private async exchange(type: TypeName): Promise<ExchangeReply> {
    const { replica } = this.options
    const own = new Map<string, object>()
    for (const [key, entry] of (await replica.read({ flavour: 'ttl', type })).table) if ((entry as Entry).author === replica.author) own.set(key, entry)
    return this.post(type, own, false)
  }

  private queuePush(type: TypeName, entries: ReadonlyMap<string, object>): void {
    const busy = this.pushing.get(type)
    if (busy) {
      for (const [k, v] of entries) busy.pending.set(k, v)
      return
    }
    const slot = { pending: new Map(entries), running: Promise.resolve() }
    slot.running = (async () => {
      let delay = 250
      while (slot.pending.size > 0 && !this.abort.signal.aborted) {
        const batch = slot.pending
        slot.pending = new Map()
        try {
          await this.push(type, batch)
          delay = 250
        } catch (e) {
          this.trouble(e as Error)
          // Retried (with whatever came since) after a pause that grows while the router stays away;
          // a newer copy of a key queued meanwhile replaces the one that failed.
          for (const [k, v] of batch) if (!slot.pending.has(k)) slot.pending.set(k, v)
          await new Promise((resolve) => setTimeout(resolve, delay))
          delay = Math.min(5000, delay * 2)
        }
      }
      this.pushing.delete(type)
    })()
    this.pushing.set(type, slot)
  }

  /** A push over the socket when it is open; by POST when it is not, or when the socket fails on it. */
  private async push(type: TypeName, entries: ReadonlyMap<string, object>): Promise<void> {
    if (this.pushSocket?.ready) {
      try {
        const corrections = await this.pushSocket.push(type, serializeTable(entries))
        return await this.mergeFromRouter(type, corrections, `push answer from ${this.options.base}`)
      } catch (e) {
        this.log.debug('push socket failed; posting instead', { router: this.options.base, error: (e as Error).message })
      }
    }
    await this.post(type, entries, true)
  }

  /**
   * One POST of `entries`, and the answer merged here. As a push (malla routers only), the answer holds
   * only the router's corrections to the entries sent.
   */
  private async post(type: TypeName, entries: ReadonlyMap<string, object>, push: boolean): Promise<ExchangeReply> {
    const { base, poster } = this.options
    const reply = await exchangeTable(endpointUrl(base, { flavour: 'ttl', type }), serializeTable(entries), { poster, timeoutMs: this.options.timeoutMs ?? 3000 }, { push })
    if (reply.kind === 'table') await this.mergeFromRouter(type, reply.value, `answer from ${base}`)
    return reply
  }

  private follow(): void {
    void followChanges(this.options.base, (e) => this.onFeed(e), {
      types: this.options.types,
      signal: this.abort.signal,
      onRetry: (error) => this.trouble(error),
    })
  }

  private onFeed(e: FeedEvent): void {
    // Changes between the first read and this connection, or missed ones (reset): read everything again;
    // the feed goes on from its cursor, so nothing after it is lost.
    if (e.event === 'hello' || e.event === 'reset') return this.readAll()
    if (e.event !== 'change' || e.flavour !== 'ttl' || !this.options.types.includes(e.type)) return
    const present = Object.entries(e.entries).filter(([, entry]) => entry !== null)
    if (present.length > 0) void this.mergeFromRouter(e.type, Object.fromEntries(present), 'change feed').catch((err: Error) => this.trouble(err))
  }

  private async mergeFromRouter(type: TypeName, value: unknown, what: string): Promise<void> {
    let table
    try {
      table = parseTable(value, what)
    } catch (e) {
      // A router that answers garbage is a router problem, not a reason to stop.
      if (isMallaError(e, 'BAD_INPUT')) return this.trouble(e)
      throw e
    }
    if (table.size > 0) await this.options.replica.merge(type, table)
  }

  private trouble(error: Error): void {
    if (this.abort.signal.aborted) return
    this.log.warn('router link trouble', { router: this.options.base, error: error.message })
    this.emitter.emit('trouble', error)
  }
}

/** Waits `ms`, or less when `signal` aborts. */
function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}
