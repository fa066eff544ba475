import { signal } from '@preact/signals'
import { displayName, type Entry, type Room, type TypeName } from 'malla/browser'
import { shortId, type People } from './people.js'

/** A line of the room's chat as shown. */
export interface ChatLine {
  readonly key: string
  readonly from: string
  readonly name: string
  readonly text: string
  readonly at: number
  readonly mine: boolean
}

/**
 * A line lives this many bleach rounds of the routers without a rewrite: about an hour on malla daemons
 * (120 s rounds), longer on LibreMesh routers. Late joiners see the lines still alive.
 */
export const LINE_TTL = 30
/** What the app keeps of a line and how many lines it shows: a flood costs a bounded render. */
export const MAX_TEXT = 2000
export const SHOWN_LINES = 200
/** Lines younger than this are acknowledged to their author, so the author sees who got them. */
const ACK_WINDOW_MS = 120_000
const ACK_FLUSH_MS = 300
const MAX_ACK_KEYS = 64
/** Peers remembered as having a line, at most: more than a room holds. */
const MAX_ACKERS = 256
/** Lines arriving this soon after joining came with the first sync, unless dated after the join. */
const HISTORY_SYNC_MS = 3000
/** Redraws at most this often, however fast lines arrive. */
const RENDER_MS = 100

/**
 * The room's chat: lines are entries of the room table `chat`, so they reach every peer of the room over
 * the overlay and through the routers, and late joiners get the recent ones. Who got a line is told back
 * to its author by a routed `seen` message.
 */
export class Chat {
  readonly lines = signal<readonly ChatLine[]>([])
  /** Older lines alive in the table but not shown. */
  readonly hidden = signal(0)
  readonly unread = signal(0)
  /** For each of this page's lines, who acknowledged it. */
  readonly acks = signal<ReadonlyMap<string, ReadonlySet<string>>>(new Map())
  name: string
  private readonly type: TypeName
  private readonly off: () => void
  private readonly seen = new Set<string>()
  /** When this page first saw each line of the table (bounded by the table). */
  private readonly arrivals = new Map<string, number>()
  private readonly pendingAcks = new Map<string, Set<string>>()
  private ackTimer: ReturnType<typeof setTimeout> | undefined
  private renderTimer: ReturnType<typeof setTimeout> | undefined
  private counter = 0
  private reading = false
  /** Lines written before this page joined are history, not unread. */
  private readonly joinedAt = Date.now()

  constructor(private readonly room: Room, name: string, private readonly people: People) {
    this.name = name
    this.type = room.tables.get('chat') as TypeName
    this.off = room.replica.on('change', (e) => {
      if (e.type !== this.type) return
      this.noteArrivals(e.keys, e.table as ReadonlyMap<string, Entry>)
      this.scheduleRender()
    })
    this.scheduleRender()
  }

  /** Whether the person is looking at the chat: lines arriving meanwhile are not unread. */
  setReading(reading: boolean): void {
    this.reading = reading
    if (reading) this.unread.value = 0
  }

  async say(text: string): Promise<void> {
    const trimmed = text.trim().slice(0, MAX_TEXT)
    if (trimmed === '') return
    const key = `${this.room.id}.${Date.now().toString(36)}.${(this.counter++).toString(36)}`
    await this.room.replica.insert(this.type, [[key, { x: trimmed, n: this.name, at: Date.now() }]], LINE_TTL)
  }

  /** Whether a line of this page's reached every person present now (and at least one). */
  reachedEveryone(key: string): boolean {
    const others = this.people.others()
    const got = this.acks.value.get(key)
    return others.length > 0 && got !== undefined && others.every((p) => got.has(p.id))
  }

  /**
   * A routed message: `seen` acknowledgements of this page's lines. Only lines of this page that are shown count
   * (anyone can name keys that look like ours), each with at most MAX_ACKERS peers: what a stranger sends cannot
   * grow what the page keeps.
   */
  receive(from: string, body: { readonly [k: string]: unknown }): void {
    if (body.t !== 'seen' || !Array.isArray(body.k)) return
    const mine = new Set(this.lines.value.filter((l) => l.mine).map((l) => l.key))
    let next: Map<string, ReadonlySet<string>> | undefined
    for (const key of body.k.slice(0, MAX_ACK_KEYS)) {
      if (typeof key !== 'string' || !mine.has(key)) continue
      const got = (next ?? this.acks.value).get(key)
      if (got?.has(from) || (got?.size ?? 0) >= MAX_ACKERS) continue
      next ??= new Map(this.acks.value)
      next.set(key, new Set([...(got ?? []), from]))
    }
    if (next) this.acks.value = next
  }

  stop(): void {
    this.off()
    clearTimeout(this.ackTimer)
    clearTimeout(this.renderTimer)
  }

  private noteArrivals(keys: readonly string[], table: ReadonlyMap<string, Entry>): void {
    const now = Date.now()
    for (const key of keys) {
      const line = lineOf(key, table.get(key))
      if (!line || line.from === this.room.id || this.seen.has(key)) continue
      this.seen.add(key)
      // What the first sync brings is history; after that, whatever arrives is new, whatever its writer's clock says.
      if (!this.reading && (line.at >= this.joinedAt || now - this.joinedAt > HISTORY_SYNC_MS)) this.unread.value++
      if (now - line.at > ACK_WINDOW_MS) continue
      let set = this.pendingAcks.get(line.from)
      if (!set) this.pendingAcks.set(line.from, (set = new Set()))
      if (set.size < MAX_ACK_KEYS) set.add(key)
    }
    if (this.pendingAcks.size > 0) this.ackTimer ??= setTimeout(() => this.flushAcks(), ACK_FLUSH_MS)
  }

  private flushAcks(): void {
    this.ackTimer = undefined
    for (const [author, keys] of this.pendingAcks) void this.room.send(author, { t: 'seen', k: [...keys] }).catch(() => {})
    this.pendingAcks.clear()
  }

  private scheduleRender(): void {
    this.renderTimer ??= setTimeout(() => {
      this.renderTimer = undefined
      void this.render()
    }, RENDER_MS)
  }

  private async render(): Promise<void> {
    const table = (await this.room.replica.read({ flavour: 'ttl', type: this.type })).table as ReadonlyMap<string, Entry>
    const all: ChatLine[] = []
    const now = Date.now()
    for (const [key, entry] of table) {
      // A line dated in the future would stay last forever: it counts as written when this page first saw it.
      let arrived = this.arrivals.get(key)
      if (arrived === undefined) this.arrivals.set(key, (arrived = now))
      const line = lineOf(key, entry, this.room.id, arrived)
      if (line) all.push(line)
    }
    if (this.arrivals.size > table.size) for (const key of this.arrivals.keys()) if (!table.has(key)) this.arrivals.delete(key)
    if (this.seen.size > table.size) for (const key of this.seen) if (!table.has(key)) this.seen.delete(key)
    all.sort((a, b) => a.at - b.at || (a.key < b.key ? -1 : 1))
    this.hidden.value = Math.max(0, all.length - SHOWN_LINES)
    this.lines.value = all.slice(-SHOWN_LINES)
    // Acknowledgements of lines no longer shown are let go.
    const shown = new Set(this.lines.value.map((l) => l.key))
    if ([...this.acks.value.keys()].some((k) => !shown.has(k))) this.acks.value = new Map([...this.acks.value].filter(([k]) => shown.has(k)))
  }
}

/** A chat entry as a line, or nothing when it is not one: anyone can write anything into the table. */
function lineOf(key: string, entry: Entry | undefined, me?: string, arrived = Date.now()): ChatLine | undefined {
  const data = entry?.data as { x?: unknown; n?: unknown; at?: unknown } | null | undefined
  if (!entry || typeof data !== 'object' || data === null || typeof data.x !== 'string') return undefined
  // The key names its writer (`<peer>.<time>.<n>`); only the writer's own copy speaks for it.
  const from = key.split('.', 1)[0] as string
  if (entry.author !== from) return undefined
  const at = typeof data.at === 'number' && Number.isFinite(data.at) ? Math.min(data.at, arrived) : 0
  // Read as presence names are: a stranger's text, cleaned of control and direction-override characters.
  const name = displayName(data.n) ?? shortId(from)
  return { key, from, name, text: data.x.slice(0, MAX_TEXT), at, mine: from === me }
}
