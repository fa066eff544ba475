import type { WriteClock } from './clock.js'
import { remoteWins, remoteWinsMultiWriter, sameData } from './order.js'
import type { Entry, Json, MultiWriterEntry, WritableTable } from './types.js'

/**
 * The pure CRDT operations on one table, in the style of LibreMesh's `_merge`/`_bleach`/`_insert`:
 * they change the table in memory and report what changed; loading, saving, locking and hooks live elsewhere.
 */
export interface Changes {
  /** Keys whose entry appeared, disappeared, or changed data or author: what hooks and sync react to. */
  readonly keys: string[]
  /** True when anything at all changed, a TTL included: the table must be saved. */
  readonly touched: boolean
  /** Keys whose entry was written (replaced or added), substantially or not: what an incremental save records. */
  readonly written: readonly string[]
  /** Keys deleted from the table (bleach). */
  readonly deleted: readonly string[]
  /** Every entry was written, and `written` does not list them (a bleach of a packed table): the table is saved whole. */
  readonly everyEntry?: boolean
}

export const DEFAULT_TTL = 30

interface EntryLike {
  readonly data: Json
  readonly author: string
}

/** A change that matters to hooks: LibreMesh's "substantial" change (a TTL alone does not count). */
export function isSubstantial(before: EntryLike | undefined, after: EntryLike | undefined): boolean {
  if (before === undefined || after === undefined) return before !== after
  return before.author !== after.author || !sameData(before.data, after.data)
}

export interface WriteContext {
  readonly author: string
  readonly clock: WriteClock
}

/** Writes each key as a fresh entry by this node: LibreMesh's insert, plus malla's clock. */
export function insertEntries(
  table: WritableTable<Entry>,
  values: Iterable<readonly [string, Json]>,
  ttl: number,
  ctx: WriteContext,
): Changes {
  const keys: string[] = []
  const written: string[] = []
  for (const [key, data] of values) {
    const before = table.get(key)
    const entry: Entry = { data, author: ctx.author, bleachTTL: ttl, clock: ctx.clock.tick() }
    table.set(key, entry)
    written.push(key)
    if (isSubstantial(before, entry)) keys.push(key)
  }
  return { keys, touched: written.length > 0, written, deleted: [] }
}

/**
 * LibreMesh's remove: a key that holds data is overwritten with `data: null` and a fresh TTL, so the
 * removal spreads like any write and fades later through bleach. Absent or already removed keys are left alone.
 */
export function removeKeys(table: WritableTable<Entry>, keys: Iterable<string>, ttl: number, ctx: WriteContext): Changes {
  const present: Array<readonly [string, Json]> = []
  for (const key of keys) {
    const entry = table.get(key)
    if (entry !== undefined && entry.data !== null) present.push([key, null])
  }
  return insertEntries(table, present, ttl, ctx)
}

/** Merges a remote table into the local one, key by key (see `remoteWins`); expired remote entries are ignored. */
export function mergeTable(table: WritableTable<Entry>, remote: ReadonlyMap<string, Entry>, clock?: WriteClock): Changes {
  return mergeChosenEntries(table, remote, (_key, theirs, ours) => {
    clock?.observe(theirs.clock)
    return remoteWins(theirs, ours) ? theirs : undefined
  })
}

/**
 * Merges a remote table under a caller's rule: `choose` returns what a key holds after (undefined or the local
 * entry: unchanged). Expired remote entries are ignored, as in `mergeTable`.
 */
export function mergeChosenEntries(table: WritableTable<Entry>, remote: ReadonlyMap<string, Entry>, choose: (key: string, theirs: Entry, ours: Entry | undefined) => Entry | undefined): Changes {
  const keys: string[] = []
  const written: string[] = []
  for (const [key, theirs] of remote) {
    if (theirs.bleachTTL <= 0) continue
    const ours = table.get(key)
    const next = choose(key, theirs, ours)
    if (next === undefined || next === ours) continue
    table.set(key, next)
    written.push(key)
    if (isSubstantial(ours, next)) keys.push(key)
  }
  return { keys, touched: written.length > 0, written, deleted: [] }
}

/** LibreMesh's bleach: entries with bleachTTL below 2 are dropped, every other TTL goes down by one. */
export function bleachTable(table: WritableTable<Entry>): Changes {
  const keys: string[] = []
  const written: string[] = []
  for (const [key, entry] of table) {
    if (entry.bleachTTL < 2) {
      table.delete(key)
      keys.push(key)
    } else {
      table.set(key, { ...entry, bleachTTL: entry.bleachTTL - 1 })
      written.push(key)
    }
  }
  return { keys, touched: written.length > 0 || keys.length > 0, written, deleted: keys }
}

export interface MultiWriterContext {
  readonly author: string
  /** Seconds since the epoch, for `lastModified` (informative only, as in LibreMesh). */
  readonly nowSeconds: () => number
  /** Uniform in [0, 1), for `fortune`. */
  readonly random: () => number
}

/**
 * LibreMesh's multi-writer insert: a key whose data differs gets `changes + 1` (0 when new) and a new
 * random `fortune` in 1..100000; writing the data a key already holds changes nothing.
 */
export function insertMultiWriter(
  table: WritableTable<MultiWriterEntry>,
  values: Iterable<readonly [string, Json]>,
  ctx: MultiWriterContext,
): Changes {
  const keys: string[] = []
  for (const [key, data] of values) {
    const before = table.get(key)
    if (before !== undefined && sameData(before.data, data)) continue
    table.set(key, {
      data,
      author: ctx.author,
      changes: before === undefined ? 0 : before.changes + 1,
      fortune: 1 + Math.floor(ctx.random() * 100000),
      lastModified: Math.floor(ctx.nowSeconds()),
    })
    keys.push(key)
  }
  return { keys, touched: keys.length > 0, written: keys, deleted: [] }
}

export function mergeMultiWriter(table: WritableTable<MultiWriterEntry>, remote: ReadonlyMap<string, MultiWriterEntry>): Changes {
  const keys: string[] = []
  const written: string[] = []
  for (const [key, theirs] of remote) {
    const ours = table.get(key)
    if (!remoteWinsMultiWriter(theirs, ours)) continue
    table.set(key, theirs)
    written.push(key)
    if (isSubstantial(ours, theirs)) keys.push(key)
  }
  return { keys, touched: written.length > 0, written, deleted: [] }
}
