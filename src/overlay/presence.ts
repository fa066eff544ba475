import { createNanoEvents, type Unsubscribe } from 'nanoevents'
import { silentLogger, type Logger } from '../core/log.js'
import type { Entry, Json, TypeName } from '../core/types.js'
import { writeOwn } from '../replica/own-writes.js'
import type { Replica } from '../replica/replica.js'
import type { MessageRouter } from './message-router.js'

/** The presence table's name among a room's tables (a leading `_`: no app table can take it). */
export const PRESENCE_TABLE = '_presence'

/**
 * A presence entry lives this many routers' bleach rounds (LibreMesh bleaches every few minutes) without a
 * rewrite; it is rewritten every REFRESH_MS, well within that, and whenever this peer's connections change.
 */
const PRESENCE_TTL = 8
const REFRESH_MS = 10 * 60_000
/** Connection changes arriving within this delay make one rewrite. */
const SETTLE_MS = 1000
/** How often each connection's round-trip time is measured. */
const PING_MS = 15_000
const MAX_LINKS_LISTED = 64

/** One peer of the room, as its presence entry and the others' say. */
export interface PresencePeer {
  readonly id: string
  /** The display name it gives itself (at most 64 characters, no control characters), when it gives one. */
  readonly name: string | undefined
  /** The router it hangs off, by name, when it knows. */
  readonly router: string | undefined
  /** The peers it says it is connected to. */
  readonly links: readonly string[]
  /**
   * Whether it is in the room now: this peer, or one reached from it through connections that both ends list.
   * A peer that vanished (a closed tab) is dropped from its neighbours' lists and so stops being reachable,
   * though its own entry lingers until it is bleached.
   */
  readonly reachable: boolean
  /** Round-trip time to it in milliseconds, for this peer's own connections (measured over the overlay). */
  readonly rttMs: number | undefined
  /**
   * The fingerprint of the person's OpenPGP key, for a peer whose id is bound to a key (§18.2): its entry is
   * signed by that key (the replica admits no other), so the name and links are theirs.
   */
  readonly fingerprint: string | undefined
}

export interface PresenceEvents {
  /** The view changed: an entry was written or dropped, or a round-trip time was measured. */
  change(): void
}

interface Connections {
  peers(): ReadonlyArray<{ readonly id: string }>
  onOpen(listener: (peer: { readonly id: string }) => void): () => void
  onClose(listener: (peer: { readonly id: string }) => void): () => void
}

export interface PresenceOptions {
  readonly replica: Replica
  /** The room's presence type (`roomTableType(room, PRESENCE_TABLE)`). */
  readonly type: TypeName
  readonly id: string
  readonly router: string | undefined
  /** This peer's display name, published with its entry (`setName` changes it). */
  readonly name?: string
  readonly connections: Connections
  readonly messages: MessageRouter
  /** Signs this peer's entry (a session's `RecordSigner.sign`), for a peer with an identity. */
  readonly sign?: (type: string, key: string, data: { readonly [k: string]: Json }) => Json
  /** The signer's fingerprint in a signed entry (handed in with the signature code, which loads with a join). */
  readonly fingerprintOf?: (data: unknown) => string | undefined
  readonly fingerprint?: string
  readonly log?: Logger
}

/**
 * Who is in the room (docs/protocol.md §15.5): each peer keeps one entry in the room's presence table, keyed by
 * its id, with its router and the peers it is connected to, rewritten only when those connections change (and
 * every 10 minutes, to outlive the routers' bleach). Round-trip times are measured on each connection over the
 * overlay and never written: a stable room's presence costs no writes.
 */
export class Presence {
  private readonly emitter = createNanoEvents<PresenceEvents>()
  private readonly rtts = new Map<string, number>()
  private readonly offs: Array<() => void> = []
  private settle: ReturnType<typeof setTimeout> | undefined
  private refresh: ReturnType<typeof setInterval> | undefined
  private pinger: ReturnType<typeof setInterval> | undefined
  private written: string | undefined
  private name: string | undefined
  private stopped = false
  private readonly log: Logger

  constructor(private readonly options: PresenceOptions) {
    this.log = options.log ?? silentLogger
    this.name = displayName(options.name)
  }

  /**
   * Publishes a new display name with this peer's entry (one write; the same name again writes nothing).
   * Names are claims, not proofs: anyone can call themselves anything (docs/protocol.md §13).
   */
  async setName(name: string | undefined): Promise<void> {
    this.name = displayName(name)
    await this.write()
  }

  on<E extends keyof PresenceEvents>(event: E, listener: PresenceEvents[E]): Unsubscribe {
    return this.emitter.on(event, listener)
  }

  start(): void {
    const { connections, replica, type } = this.options
    this.offs.push(
      connections.onOpen((peer) => {
        this.changed()
        setTimeout(() => this.pingOne(peer.id), SETTLE_MS)
      }),
      connections.onClose((peer) => {
        this.rtts.delete(peer.id)
        this.changed()
      }),
      replica.on('change', (e) => {
        if (e.type === type) this.emitter.emit('change')
      }),
    )
    void this.write()
    this.refresh = setInterval(() => void this.write(true), REFRESH_MS)
    this.pinger = setInterval(() => this.ping(), PING_MS)
  }

  /** Withdraws this peer's entry (it left). */
  async stop(): Promise<void> {
    this.stopped = true
    for (const off of this.offs.splice(0)) off()
    clearTimeout(this.settle)
    clearInterval(this.refresh)
    clearInterval(this.pinger)
    // A key-bound peer's withdrawal is signed like its entry: nobody else can withdraw it.
    const gone = this.options.sign ? this.options.sign(this.options.type, this.options.id, { v: 1, gone: true }) : null
    await writeOwn(this.options.replica, this.options.type, [[this.options.id, gone]], PRESENCE_TTL).catch((e: Error) => this.log.warn('could not withdraw presence', { error: e.message }))
  }

  /** The fingerprint of the key `id`'s entry is signed by (this peer's own too), if it has one. */
  async fingerprintOf(id: string): Promise<string | undefined> {
    if (id === this.options.id) return this.options.fingerprint
    const entry = ((await this.options.replica.read({ flavour: 'ttl', type: this.options.type })).table as ReadonlyMap<string, Entry>).get(id)
    return entry && entry.author === id ? this.options.fingerprintOf?.(entry.data) : undefined
  }

  /** Everyone with a presence entry, and whether they are reachable now. */
  async view(): Promise<PresencePeer[]> {
    const table = (await this.options.replica.read({ flavour: 'ttl', type: this.options.type })).table as ReadonlyMap<string, Entry>
    const listed = new Map<string, { name: string | undefined; router: string | undefined; links: readonly string[]; fingerprint: string | undefined }>()
    const fingerprintOf = this.options.fingerprintOf
    for (const [id, p] of ownEntries(table)) listed.set(id, { ...p, links: p.links ?? [], fingerprint: fingerprintOf ? fingerprintOf(table.get(id)?.data) : undefined })
    const own = this.options.connections.peers().map((p) => p.id)
    listed.set(this.options.id, { name: this.name, router: this.options.router, links: own, fingerprint: this.options.fingerprint })
    // Reachable: breadth first from this peer over links both ends list (own links need only this side).
    const reachable = new Set([this.options.id, ...own])
    const queue = [...own]
    while (queue.length > 0) {
      const at = queue.shift() as string
      for (const next of listed.get(at)?.links ?? []) {
        if (reachable.has(next) || !listed.get(next)?.links.includes(at)) continue
        reachable.add(next)
        queue.push(next)
      }
    }
    return [...listed].map(([id, p]) => ({ id, name: p.name, router: p.router, links: p.links, reachable: reachable.has(id), rttMs: this.rtts.get(id), fingerprint: p.fingerprint }))
  }

  private changed(): void {
    if (this.stopped) return
    clearTimeout(this.settle)
    this.settle = setTimeout(() => void this.write(), SETTLE_MS)
  }

  private async write(force = false): Promise<void> {
    if (this.stopped) return
    const links = [...new Set(this.options.connections.peers().map((p) => p.id))].sort().slice(0, MAX_LINKS_LISTED)
    const data = { v: 1, ...(this.options.router ? { r: this.options.router } : {}), l: links, ...(this.name !== undefined ? { n: this.name } : {}) }
    const text = JSON.stringify(data)
    if (!force && text === this.written) return
    this.written = text
    const signed = this.options.sign ? this.options.sign(this.options.type, this.options.id, data) : data
    await writeOwn(this.options.replica, this.options.type, [[this.options.id, signed]], PRESENCE_TTL).catch((e: Error) => this.log.warn('could not write presence', { error: e.message }))
  }

  /** Each connection's round-trip time: a `ping` to the neighbour, timed to its acknowledgement. */
  private ping(): void {
    for (const { id } of this.options.connections.peers()) this.pingOne(id)
  }

  private pingOne(id: string): void {
    if (this.stopped) return
    const started = performance.now()
    this.options.messages.signal(id, { t: 'ping' }).then(
      () => {
        this.rtts.set(id, performance.now() - started)
        this.emitter.emit('change')
      },
      () => this.rtts.delete(id),
    )
  }
}

const MAX_NAME_CHARS = 64

/** A display name as written and as read: trimmed, without control characters, at most 64 characters; else none. */
export function displayName(raw: unknown): string | undefined {
  if (typeof raw !== 'string') return undefined
  // eslint-disable-next-line no-control-regex
  const clean = [...raw.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, '').trim()].slice(0, MAX_NAME_CHARS).join('')
  return clean === '' ? undefined : clean
}

/**
 * Peers that left without withdrawing (docs/protocol.md §15.5): each listed connections in its entry, and every
 * peer it listed has an entry of its own that no longer lists it. Their neighbours' keepalives dropped them, so
 * their offers lead nowhere. A peer that lists no connection (new, or alone) is never counted as gone: nothing
 * says it left.
 */
export function departedPeers(table: ReadonlyMap<string, Entry>): Set<string> {
  const links = new Map<string, readonly string[]>()
  for (const [id, p] of ownEntries(table)) if (p.links !== undefined) links.set(id, p.links)
  const gone = new Set<string>()
  for (const [peer, listed] of links) {
    if (listed.length > 0 && listed.every((other) => links.get(other)?.includes(peer) === false)) gone.add(peer)
  }
  return gone
}

/**
 * The presence entries that speak for a peer (its own: `author` is the key), read as a stranger's input: a
 * name through `displayName`, a router name of at most 64 characters, at most 64 links (undefined when the
 * entry has no list of them).
 */
function ownEntries(table: ReadonlyMap<string, Entry>): Map<string, { name: string | undefined; router: string | undefined; links: readonly string[] | undefined }> {
  const out = new Map<string, { name: string | undefined; router: string | undefined; links: readonly string[] | undefined }>()
  for (const [key, entry] of table) {
    const data = entry.data as { r?: unknown; l?: unknown; n?: unknown; gone?: unknown } | null | undefined
    if (data === null || data === undefined || typeof data !== 'object' || entry.author !== key || data.gone === true) continue
    const links = Array.isArray(data.l) ? data.l.filter((x): x is string => typeof x === 'string').slice(0, MAX_LINKS_LISTED) : undefined
    out.set(key, { name: displayName(data.n), router: typeof data.r === 'string' ? data.r.slice(0, 64) : undefined, links })
  }
  return out
}
