import { jsonEqual } from '../../core/order.js'
import type { Entry, Json, Table } from '../../core/types.js'
import type { AsyncEntry } from './state-slice.js'

/**
 * Converts TTLs between malla's tables and shared-state-async at the edge (docs/protocol.md §19.4).
 *
 * malla (like LibreMesh's Lua code) counts bleachTTL in bleach rounds: an entry at bleachTTL L is dropped by
 * the L-th round from now, so its life left is `L × I − e` (I the bleach interval, e the time since the last
 * round). shared-state-async counts seconds left and bleaches every second, and its TTL is also its freshness:
 * a later write of a key has more seconds left than an earlier one. Rounds are too coarse for that (two writes
 * within one interval have the same L), so the bridge keeps a deadline per key for what it exports:
 *
 * - A malla write (an entry with a clock) gets `L × I` seconds from the moment this node first sees it, as a
 *   C++ insert gets its full TTL from the moment it is made; the deadline holds until the entry is replaced.
 * - An entry that came in from shared-state-async keeps the exact seconds it came with.
 * - Any other entry (a Lua router's) has `L × I − e`: its life left here.
 * - In: s seconds become `L = max(1, ⌊(s + e) / I⌋)` rounds, so the way back through a malla or Lua node never
 *   gives an entry more seconds than it came with (none lives forever between the two kinds of daemon).
 * - Which copy wins: the received one, when it has strictly more seconds left than the local one (malla's tie
 *   rule; the C++ daemon also takes equal TTLs, and so lets a stale echo overwrite a write). A copy of this
 *   node's own write never wins, as the C++ daemon discards its own entries from remote peers; and a copy
 *   that crossed a C++ hop (no clock) never replaces a malla write of the same author with other data, since
 *   without the clock nothing tells which is the later write: that one comes by a malla path, or the old expires.
 * - A winning copy with other data than the local one gets at least one round more than it, so malla nodes and
 *   Lua routers, which compare rounds, take it too.
 */
export interface TtlBridgeOptions {
  /** This node's author name: copies of its own writes are never taken from shared-state-async. */
  readonly self: string
  /** The bleach interval of this node's tables, in ms. */
  readonly bleachIntervalMs: number
  readonly now?: () => number
}

interface Exact {
  readonly author: string
  /** The data object of the entry it describes: a bleach copies the entry but keeps this reference. */
  readonly data: Json
  readonly clock: string | undefined
  readonly deadlineMs: number
}

const describes = (e: Exact, entry: Entry) => e.data === entry.data && e.author === entry.author && e.clock === entry.clock

export class TtlBridge {
  private lastBleachAt: number
  private readonly now: () => number
  /** Exact deadlines of entries taken from shared-state-async, per type; pruned on every export of the type. */
  private readonly exact = new Map<string, Map<string, Exact>>()

  constructor(private readonly options: TtlBridgeOptions) {
    this.now = options.now ?? Date.now
    this.lastBleachAt = this.now()
  }

  /** The daemon bleached its tables now. */
  bleached(at = this.now()): void {
    this.lastBleachAt = at
  }

  private sinceBleachMs(now: number): number {
    return Math.min(Math.max(0, now - this.lastBleachAt), this.options.bleachIntervalMs)
  }

  /** Seconds left to `entry` as a shared-state-async node would count them (a malla write seen first now gets its deadline). */
  secondsLeft(type: string, key: string, entry: Entry, now = this.now()): number {
    const exact = this.exact.get(type)?.get(key)
    if (exact !== undefined && describes(exact, entry)) return Math.max(0, Math.floor((exact.deadlineMs - now) / 1000))
    if (entry.clock !== undefined) {
      const deadlineMs = now + entry.bleachTTL * this.options.bleachIntervalMs
      this.remember(type, key, entry, deadlineMs)
      return Math.floor((deadlineMs - now) / 1000)
    }
    return Math.max(0, Math.floor((entry.bleachTTL * this.options.bleachIntervalMs - this.sinceBleachMs(now)) / 1000))
  }

  /** An entry just entered this node's table: a malla write's seconds count from now. */
  observe(type: string, key: string, entry: Entry | undefined): void {
    if (entry !== undefined && entry.clock !== undefined) this.secondsLeft(type, key, entry)
  }

  /** Bleach rounds for `seconds` left (see the class comment). */
  roundsFor(seconds: number, now = this.now()): number {
    return Math.max(1, Math.floor((seconds * 1000 + this.sinceBleachMs(now)) / this.options.bleachIntervalMs))
  }

  /** A table as shared-state-async entries; entries already gone (no second left) are left out. */
  exportTable(type: string, table: ReadonlyMap<string, Entry>): Array<[string, AsyncEntry]> {
    const now = this.now()
    const out: Array<[string, AsyncEntry]> = []
    const exact = this.exact.get(type)
    if (exact !== undefined) {
      for (const [key, e] of exact) {
        const entry = table.get(key)
        if (entry === undefined || !describes(e, entry) || e.deadlineMs <= now) exact.delete(key)
      }
      if (exact.size === 0) this.exact.delete(type)
    }
    for (const [key, entry] of table) {
      const ttl = this.secondsLeft(type, key, entry, now)
      if (ttl > 0) out.push([key, { author: entry.author, ttl, data: entry.data }])
    }
    return out
  }

  /**
   * The received entries as malla entries, and the rule that decides, key by key against the table as it is
   * when the merge runs, what replaces the local copy (undefined: keep it). Seconds of what wins are remembered.
   */
  importSlice(
    type: string,
    slice: ReadonlyMap<string, AsyncEntry>,
    fromThisMachine = false,
  ): { remote: Table; choose: (key: string, theirs: Entry, ours: Entry | undefined) => Entry | undefined; ownWrites: Array<[string, Json, number]> } {
    const now = this.now()
    const remote: Table = new Map()
    // From this machine, entries under this node's name are writes of LibreMesh's own CLI
    // (`shared-state-async insert`, as publishers run it), which the C++ daemon takes from loopback: so does malla.
    const ownWrites: Array<[string, Json, number]> = []
    for (const [key, e] of slice) {
      if (e.ttl <= 0) continue
      if (e.author === this.options.self) {
        if (fromThisMachine) ownWrites.push([key, e.data, this.roundsFor(e.ttl, now)])
        continue
      }
      remote.set(key, { data: e.data, author: e.author, bleachTTL: this.roundsFor(e.ttl, now) })
    }
    const choose = (key: string, theirs: Entry, ours: Entry | undefined): Entry | undefined => {
      const seconds = slice.get(key)?.ttl ?? 0
      if (ours !== undefined && seconds <= this.secondsLeft(type, key, ours, now)) return undefined
      const same = ours !== undefined && ours.author === theirs.author && jsonEqual(ours.data, theirs.data)
      if (!same && ours?.clock !== undefined && ours.author === theirs.author) return undefined
      let entry = theirs
      // The same write, fresher: the local entry (its clock, its data object) with the later deadline.
      if (same) entry = theirs.bleachTTL > ours.bleachTTL ? { ...ours, bleachTTL: theirs.bleachTTL } : ours
      // Another write: at least a round more than the copy it replaces, for those who compare rounds.
      else if (ours !== undefined) entry = { ...theirs, bleachTTL: Math.max(theirs.bleachTTL, ours.bleachTTL + 1) }
      this.remember(type, key, entry, now + seconds * 1000)
      return entry
    }
    return { remote, choose, ownWrites }
  }

  private remember(type: string, key: string, entry: Entry, deadlineMs: number): void {
    let exact = this.exact.get(type)
    if (exact === undefined) this.exact.set(type, (exact = new Map()))
    exact.set(key, { author: entry.author, data: entry.data, clock: entry.clock, deadlineMs })
  }
}
