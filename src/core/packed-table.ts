import { compareStrings } from './order.js'
import type { Entry, Json, TextTable } from './types.js'

/**
 * Tables at least this large are held packed (see PackedTable); smaller ones stay plain Maps, which are
 * faster to read and cost little at that size. A packed table that shrinks below half of it is unpacked.
 */
export const PACK_AT = 4096

/**
 * Turns a chunk of entries' data (JSON text, so always well-formed UTF-16) into a shorter string and back,
 * exactly. The daemon gives deflate (node:zlib); the core loads no compressor of its own.
 */
export interface TextCodec {
  compress(text: string): string
  expand(packed: string): string
}

export interface PackOptions {
  /** Compresses each full chunk of data; without it, data stays plain text. */
  readonly codec?: TextCodec
  /** Characters of data per chunk (8 Ki by default: one chunk is what a read of one entry expands). */
  readonly chunkChars?: number
}

/** How a replica holds its large tables packed: given to it by the daemon (pages leave it out, and never load this module). */
export interface TablePacking {
  /** TTL tables of this many entries or more are packed. */
  readonly at: number
  readonly Table: typeof PackedTable
  readonly options?: PackOptions
}

/**
 * Characters of entry data per chunk; an entry larger than this gets a chunk of its own. Small, so that
 * reading one entry of a compressed chunk costs ~20 µs, yet large enough for deflate to find the field names
 * that repeat from entry to entry (5× smaller on host records at 8 Ki, 5.5× at 64 Ki).
 */
const CHUNK_CHARS = 8 * 1024
/** A chunk less than this share of which is still read by the new table has its live entries moved out of it. */
const KEEP_CHUNK_ABOVE = 0.75
/** Characters of expanded chunks kept for the next reads (entries are mostly read in runs: saves, replies, folds). */
const EXPANDED_CACHE_CHARS = 256 * 1024

const NO_CLOCK = Number.NaN
const ENTRY_FIELDS = new Set(['data', 'author', 'bleachTTL', 'clock'])
const INT32_MIN = -(2 ** 31)
const INT32_MAX = 2 ** 31 - 1

/** What a packed table is made of: per entry (by slot) its data's place and its fields, and what they refer to. */
interface PackedParts {
  /** Slots in the order of their keys (UTF-16 code units): the key index, searched by bisection. */
  readonly order: Uint32Array
  readonly chunkOf: Uint32Array
  /** Where the slot's key starts in its chunk's keys. */
  readonly keyOffsetOf: Uint32Array
  readonly keyLengthOf: Uint32Array
  /** Where the slot's data (JSON text) starts in its chunk's data, and its length. */
  readonly dataOffsetOf: Uint32Array
  readonly lengthOf: Uint32Array
  readonly ttlOf: Int32Array
  readonly authorOf: Uint32Array
  readonly clockOf: Float64Array
  readonly chunks: readonly Chunk[]
  readonly authors: readonly string[]
  /** Fields other than data, author, bleachTTL and clock, as `"name":value,...` (rare: kept as received). */
  readonly extras: ReadonlyMap<number, string>
  readonly hashes: BigUint64Array | undefined
  readonly options: PackOptions
  /** The room the columns have, shared by the tables whose columns are the same arrays. */
  readonly store: ColumnStore
}

/**
 * Columns are made with room to spare, and a table of new keys only is written into that room (see
 * `PackedTable.append`) instead of copying every column: a fill of a large table then allocates nothing per
 * insert but the key order. Slots below a table's size are never written again, so every table sharing the
 * arrays reads what it always read; `used` says how far some table has written, so that only one table built
 * on a given one takes the room after it (another copies).
 */
interface ColumnStore {
  used: number
  readonly capacity: number
}

/** Spare room given to columns that are copied to grow: appends then copy them once per quarter of growth. */
const GROWTH = 1.25

/**
 * Entries' keys and data, as texts run together: strings, which the JavaScript heap keeps compact as it
 * collects (the C heap under byte buffers was left in pieces). The keys stay plain, for the bisection; the
 * data of a full chunk is compressed when the table has a codec, and expanded when an entry is read.
 */
class Chunk {
  constructor(
    readonly keys: string,
    private readonly plain: string | undefined,
    private readonly packed: string | undefined,
    /** Characters of data. */
    readonly dataLength: number,
    private readonly codec: TextCodec | undefined,
  ) {}

  static of(keys: string, data: string, options: PackOptions): Chunk {
    const codec = options.codec
    if (codec === undefined || data.length < (options.chunkChars ?? CHUNK_CHARS) / 2) return new Chunk(keys, data, undefined, data.length, undefined)
    return new Chunk(keys, undefined, codec.compress(data), data.length, codec)
  }

  get isCompressed(): boolean {
    return this.packed !== undefined
  }

  /** Characters this chunk stands for (keys and data), whatever it holds. */
  get size(): number {
    return this.keys.length + this.dataLength
  }

  get data(): string {
    if (this.plain !== undefined) return this.plain
    const cached = expanded.get(this)
    if (cached !== undefined) {
      expanded.delete(this) // to the end: most recently read
      expanded.set(this, cached)
      return cached
    }
    const text = (this.codec as TextCodec).expand(this.packed as string)
    if (text.length !== this.dataLength) throw new Error(`packed chunk expanded to ${text.length} characters, expected ${this.dataLength}`)
    expandedChars += text.length
    expanded.set(this, text)
    for (const [chunk, t] of expanded) {
      if (expandedChars <= EXPANDED_CACHE_CHARS || chunk === this) break
      expanded.delete(chunk)
      expandedChars -= t.length
    }
    return text
  }
}

/** The last chunks expanded, oldest first (one cache for the process: chunks are shared by a table's versions). */
const expanded = new Map<Chunk, string>()
let expandedChars = 0

/** One entry's place and fields, as a table being built receives it. */
interface Row {
  chunk: number
  keyOffset: number
  dataOffset: number
  keyLength: number
  length: number
  ttl: number
  author: number
  clock: number
  extra: string | undefined
  hash: bigint
}

/**
 * A TTL table held compactly, for the 100,000-entry tables a router may hold: entries' keys, and apart from
 * them their data (as JSON text), are kept run together with other entries' in chunks (see Chunk), their
 * author, TTL and clock in typed arrays, and the keys are found by bisection of an array of slots in key
 * order, so no key is a string of its own until it is read. A plain Map of entry objects costs
 * ~460 bytes per entry of ~200 bytes of data (the parsed object, its strings, the entry object, the key and
 * its Map entry); packed, the key's and data's characters plus ~40.
 *
 * It reads like a Map of entries (`ReadonlyMap<string, Entry>`, in the order a Map would have), so every
 * table operation works on it, but each `get` makes a fresh entry (parsing its data): what needs many
 * entries' text without their values (saving, full-table sync) asks `entryJson`, which parses nothing. It is
 * never changed: a change makes a new table (`fold`), which shares the unchanged entries' text.
 */
export class PackedTable implements TextTable {
  /** Per-entry hashes for reconciliation (reconcile.ts), made on first use; 0 is "not yet". */
  private hashes: BigUint64Array | undefined
  /** Each author as JSON text, made at the first `entryJson`. */
  private authorJson: string[] | undefined

  private readonly p: PackedParts

  /** Made by `pack`, `fold` and `bleached`; the parts are not copied and must not change afterwards. */
  constructor(parts: PackedParts) {
    this.p = parts
    this.hashes = parts.hashes
  }

  /** `table` packed, in its order. */
  static pack(table: ReadonlyMap<string, Entry>, options?: PackOptions): PackedTable {
    return PackedTable.fold(table, new Map(), new Set(), options)
  }

  /**
   * `base` with `changes` applied (an undefined value deletes the key), in a Map's order: the base's keys
   * where they were, then `moved` keys (deleted and written again) and new keys in the order of `changes`.
   * When `base` is packed, its unchanged entries are copied without being read, and chunks it mostly no
   * longer reads are left behind (their live entries copied on), so dead bytes stay under a third. `options`
   * default to the packed base's.
   */
  static fold(base: ReadonlyMap<string, Entry>, changes: ReadonlyMap<string, Entry | undefined>, moved: ReadonlySet<string>, options?: PackOptions): PackedTable {
    if (base instanceof PackedTable && (options === undefined || options === base.p.options)) {
      const appended = base.append(changes)
      if (appended !== undefined) return appended
    }
    // The changed keys the base holds, by slot: the rest of the base is copied without reading a key.
    const changedAt = new Map<number, string>()
    if (base instanceof PackedTable) {
      for (const key of changes.keys()) {
        const slot = base.slotOf(key)
        if (slot !== undefined) changedAt.set(slot, key)
      }
    }
    // Each changed key is looked up in a packed base once, above.
    const held = base instanceof PackedTable ? new Set(changedAt.values()) : undefined
    const inBase = (key: string): boolean => (held ? held.has(key) : base.has(key))
    let size = base.size
    for (const [key, entry] of changes) {
      if (entry === undefined) size -= inBase(key) ? 1 : 0
      else size += inBase(key) ? 0 : 1
    }
    const packed = base instanceof PackedTable ? base : undefined
    const builder = new TableBuilder(size, packed, packed?.hashes !== undefined, options ?? packed?.p.options ?? {})
    if (base instanceof PackedTable) {
      builder.shareChunks(base.p.chunks, base.chunksWorthKeeping(changedAt, builder.chunkChars))
      for (let slot = 0; slot < base.size; slot++) {
        const key = changedAt.get(slot)
        if (key === undefined) builder.addPacked(base, slot)
        else {
          const entry = changes.get(key)
          if (entry !== undefined && !moved.has(key)) builder.addEntry(key, entry, slot)
        }
      }
    } else {
      for (const [key, entry] of base) {
        if (!changes.has(key)) builder.addEntry(key, entry)
        else if (!moved.has(key)) {
          const changed = changes.get(key)
          if (changed !== undefined) builder.addEntry(key, changed)
        }
      }
    }
    for (const [key, entry] of changes) if (entry !== undefined && (moved.has(key) || !inBase(key))) builder.addEntry(key, entry)
    return builder.build()
  }

  /**
   * `changes` appended, when they are all new keys: written after this table's slots, in the room its columns
   * have (or in columns copied with room to spare), the last chunk extended rather than rewritten, and the new
   * keys merged into a copy of the key order. Undefined when `changes` delete or replace a key: `fold` then
   * builds the table anew.
   */
  private append(changes: ReadonlyMap<string, Entry | undefined>): PackedTable | undefined {
    if (changes.size === 0) return undefined
    const rows: Array<{ key: string; row: EncodedEntry }> = []
    for (const [key, entry] of changes) {
      if (entry === undefined || this.slotOf(key) !== undefined) return undefined
      rows.push({ key, row: encodeEntry(key, entry) })
    }
    const size = this.size
    const total = size + rows.length
    const p = this.p
    const inPlace = p.store.used === size && p.store.capacity >= total
    const cols: Columns = inPlace ? p : copyColumns(p, size, Math.ceil(total * GROWTH))
    cols.store.used = total
    const hashes = this.hashes === undefined ? undefined : inPlace && this.hashes.length >= total ? this.hashes : grown(this.hashes, size, cols.store.capacity)
    const chunks = p.chunks.slice()
    const writer = new ChunkWriter(chunks, p.options)
    // The last chunk, while plain and not full, is extended: its entries keep their offsets.
    const last = chunks[chunks.length - 1]
    if (last !== undefined && !last.isCompressed && last.dataLength < writer.chunkChars) writer.reopen(chunks.length - 1)
    const authors = new AuthorIds(p.authors)
    let extras = p.extras
    const placed: Array<{ readonly key: string; readonly slot: number }> = []
    rows.forEach(({ key, row }, i) => {
      const slot = size + i
      writer.put(cols, slot, key, row.data)
      cols.keyLengthOf[slot] = key.length
      cols.lengthOf[slot] = row.data.length
      cols.authorOf[slot] = authors.id(row.author)
      cols.ttlOf[slot] = row.ttl
      cols.clockOf[slot] = row.clock
      if (hashes) hashes[slot] = 0n
      if (row.extra !== undefined) {
        if (extras === p.extras) extras = new Map(extras)
        ;(extras as Map<number, string>).set(slot, row.extra)
      }
      placed.push({ key, slot })
    })
    writer.close()
    const parts: PackedParts = { ...cols, chunks, authors: authors.names, extras, hashes, options: p.options, order: new Uint32Array(0) }
    return new PackedTable({ ...parts, order: mergeOrder(p.order, placed, parts) })
  }

  /**
   * The table after one bleach round: every TTL one less, entries below 2 dropped (`bleachTable`'s rule),
   * without reading any entry's data. Returns the dropped keys too.
   */
  bleached(): { table: PackedTable; dropped: string[] } {
    const dropped: string[] = []
    for (let slot = 0; slot < this.size; slot++) if (this.p.ttlOf[slot]! < 2) dropped.push(this.keyAt(slot))
    if (dropped.length > 0) {
      return { table: PackedTable.fold(this, new Map(dropped.map((k) => [k, undefined])), new Set()).bleached().table, dropped }
    }
    const ttl = this.p.ttlOf.map((t) => t - 1)
    // The TTL column is new and has the same room; the others are shared, so the room after them is too.
    const table = new PackedTable({ ...this.p, ttlOf: ttl, hashes: this.hashes })
    return { table, dropped }
  }

  get size(): number {
    return this.p.order.length
  }

  has(key: string): boolean {
    return this.slotOf(key) !== undefined
  }

  get(key: string): Entry | undefined {
    const slot = this.slotOf(key)
    return slot === undefined ? undefined : this.entryAt(slot)
  }

  /** The entry's JSON text, as `JSON.stringify` of `get(key)` would give it, without parsing its data. */
  entryJson(key: string): string | undefined {
    const slot = this.slotOf(key)
    if (slot === undefined) return undefined
    const clock = this.p.clockOf[slot]!
    const extra = this.p.extras.get(slot)
    return (
      `{"data":${this.dataText(slot)},"author":${(this.authorJson ??= this.p.authors.map((a) => JSON.stringify(a)))[this.p.authorOf[slot]!]},"bleachTTL":${this.p.ttlOf[slot]}` +
      `${Number.isNaN(clock) ? '' : `,"clock":"${clock}"`}${extra === undefined ? '' : `,${extra}`}}`
    )
  }

  /** A hash of the entry under `key`, made by `make` once per entry and then kept with it, also across folds. */
  cachedHash(key: string, make: (entry: Entry) => bigint): bigint | undefined {
    const slot = this.slotOf(key)
    return slot === undefined ? undefined : this.hashAt(slot, key, (_key, entry) => make(entry))
  }

  /** Every key with its entry's hash, made by `make` where not yet known (see `cachedHash`), without looking keys up. */
  *keyHashes(make: (key: string, entry: Entry) => bigint, only?: (key: string) => boolean): IterableIterator<[string, bigint]> {
    for (let slot = 0; slot < this.size; slot++) {
      const key = this.keyAt(slot)
      if (only === undefined || only(key)) yield [key, this.hashAt(slot, key, make)]
    }
  }

  /** The kept hash of the entry in `slot`, or the one `make` gives, kept from then on. */
  private hashAt(slot: number, key: string, make: (key: string, entry: Entry) => bigint): bigint {
    const hashes = (this.hashes ??= new BigUint64Array(this.p.store.capacity))
    const known = hashes[slot]!
    if (known !== 0n) return known
    const made = make(key, this.entryAt(slot))
    hashes[slot] = made
    return made
  }

  /** Whether this table's columns are `other`'s arrays (one was appended to the other in place). */
  sharesColumnsWith(other: PackedTable): boolean {
    return this.p.store === other.p.store
  }

  /**
   * Characters of keys and data this table uses, characters of the chunks it holds (what it keeps alive), and
   * how many of those characters are held compressed, in how many chunks.
   */
  textSize(): { live: number; held: number; compressed: number; chunks: number } {
    let live = 0
    for (let slot = 0; slot < this.size; slot++) live += this.p.keyLengthOf[slot]! + this.p.lengthOf[slot]!
    let held = 0
    let compressed = 0
    for (const c of this.p.chunks) {
      held += c.size
      if (c.isCompressed) compressed += c.dataLength
    }
    return { live, held, compressed, chunks: this.p.chunks.length }
  }

  *keys(): MapIterator<string> {
    for (let slot = 0; slot < this.size; slot++) yield this.keyAt(slot)
  }

  *entries(): MapIterator<[string, Entry]> {
    for (let slot = 0; slot < this.size; slot++) yield [this.keyAt(slot), this.entryAt(slot)]
  }

  *values(): MapIterator<Entry> {
    for (let slot = 0; slot < this.size; slot++) yield this.entryAt(slot)
  }

  [Symbol.iterator](): MapIterator<[string, Entry]> {
    return this.entries()
  }

  forEach(callback: (value: Entry, key: string, map: ReadonlyMap<string, Entry>) => void, thisArg?: unknown): void {
    for (let slot = 0; slot < this.size; slot++) callback.call(thisArg, this.entryAt(slot), this.keyAt(slot), this)
  }

  /** The slot holding `key`, found by bisection of the key order (~17 steps at 100,000 keys). */
  slotOf(key: string): number | undefined {
    const order = this.p.order
    let lo = 0
    let hi = order.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const slot = order[mid]!
      const c = compareKey(this.p, slot, key)
      if (c === 0) return slot
      if (c < 0) lo = mid + 1
      else hi = mid
    }
    return undefined
  }

  private keyAt(slot: number): string {
    const offset = this.p.keyOffsetOf[slot]!
    return this.p.chunks[this.p.chunkOf[slot]!]!.keys.slice(offset, offset + this.p.keyLengthOf[slot]!)
  }

  private dataText(slot: number): string {
    const offset = this.p.dataOffsetOf[slot]!
    return this.p.chunks[this.p.chunkOf[slot]!]!.data.slice(offset, offset + this.p.lengthOf[slot]!)
  }

  private entryAt(slot: number): Entry {
    const entry: Record<string, unknown> = { data: JSON.parse(this.dataText(slot)) as Json, author: this.p.authors[this.p.authorOf[slot]!], bleachTTL: this.p.ttlOf[slot] }
    const clock = this.p.clockOf[slot]!
    if (!Number.isNaN(clock)) entry.clock = String(clock)
    const extra = this.p.extras.get(slot)
    if (extra !== undefined) {
      // defineProperty, not assignment: a field named "__proto__" must stay a field.
      const fields = JSON.parse(`{${extra}}`) as Record<string, unknown>
      for (const name of Object.keys(fields)) Object.defineProperty(entry, name, { value: fields[name], enumerable: true, writable: true, configurable: true })
    }
    return entry as unknown as Entry
  }

  /**
   * Which of this table's chunks a fold with `changes` keeps: those it still reads more than KEEP_CHUNK_ABOVE
   * of, and not the ones under half full (the last one written, mostly), whose live entries are written again
   * with the fold's own, so that single inserts fill chunks instead of making one chunk each.
   */
  private chunksWorthKeeping(changedAt: ReadonlyMap<number, unknown>, chunkChars: number): boolean[] {
    const live = new Float64Array(this.p.chunks.length)
    for (let slot = 0; slot < this.size; slot++) if (!changedAt.has(slot)) live[this.p.chunkOf[slot]!]! += this.p.keyLengthOf[slot]! + this.p.lengthOf[slot]!
    return this.p.chunks.map((c, i) => live[i]! > KEEP_CHUNK_ABOVE * c.size && c.dataLength >= chunkChars / 2)
  }

  /** Builder access to one packed entry. */
  readRow(slot: number, row: Row): void {
    row.chunk = this.p.chunkOf[slot]!
    row.keyOffset = this.p.keyOffsetOf[slot]!
    row.dataOffset = this.p.dataOffsetOf[slot]!
    row.keyLength = this.p.keyLengthOf[slot]!
    row.length = this.p.lengthOf[slot]!
    row.ttl = this.p.ttlOf[slot]!
    row.author = this.p.authorOf[slot]!
    row.clock = this.p.clockOf[slot]!
    row.extra = this.p.extras.get(slot)
    row.hash = this.hashes?.[slot] ?? 0n
  }

  /** Builder access: an entry's key and data. */
  rowKey(row: Row): string {
    return this.p.chunks[row.chunk]!.keys.slice(row.keyOffset, row.keyOffset + row.keyLength)
  }

  rowData(row: Row): string {
    return this.p.chunks[row.chunk]!.data.slice(row.dataOffset, row.dataOffset + row.length)
  }

  /** Builder access: the key order. */
  get keyOrder(): Uint32Array {
    return this.p.order
  }

  authorName(id: number): string {
    return this.p.authors[id]!
  }

}

/** What comparing a key with a slot's key needs. */
interface KeyText {
  readonly chunks: readonly Chunk[]
  readonly chunkOf: Uint32Array
  readonly keyOffsetOf: Uint32Array
  readonly keyLengthOf: Uint32Array
}

/** The slot's key against `key`, by UTF-16 code units (as `<` orders strings): negative, zero or positive. */
function compareKey(t: KeyText, slot: number, key: string): number {
  const chunk = t.chunks[t.chunkOf[slot]!]!.keys
  const offset = t.keyOffsetOf[slot]!
  const length = t.keyLengthOf[slot]!
  const n = Math.min(length, key.length)
  for (let i = 0; i < n; i++) {
    const d = chunk.charCodeAt(offset + i) - key.charCodeAt(i)
    if (d !== 0) return d
  }
  return length - key.length
}

/** An entry as its columns and text hold it. */
interface EncodedEntry {
  readonly data: string
  readonly author: string
  readonly ttl: number
  readonly clock: number
  readonly extra: string | undefined
}

function encodeEntry(key: string, entry: Entry): EncodedEntry {
  if (!Number.isInteger(entry.bleachTTL) || entry.bleachTTL < INT32_MIN || entry.bleachTTL > INT32_MAX || typeof entry.author !== 'string') {
    throw new TypeError(`entry ${JSON.stringify(key.slice(0, 80))} cannot be packed: bad author or bleachTTL`)
  }
  // A clock is kept as a number when its text comes back the same (the canonical decimals §3 allows);
  // any other value is kept as received, among the extra fields.
  const clock = entry.clock === undefined ? NO_CLOCK : Number(entry.clock)
  const numeric = entry.clock === undefined || String(clock) === entry.clock
  let extra: string | undefined
  for (const name of Object.keys(entry)) {
    if (ENTRY_FIELDS.has(name) && (name !== 'clock' || numeric)) continue
    const value = JSON.stringify(entry[name])
    if (value === undefined) continue // what JSON.stringify of the entry would leave out too
    extra = `${extra === undefined ? '' : `${extra},`}${JSON.stringify(name)}:${value}`
  }
  return { data: JSON.stringify(entry.data ?? null), author: entry.author, ttl: entry.bleachTTL, clock: numeric ? clock : NO_CLOCK, extra }
}

/**
 * `kept` (slots in key order) with the `placed` slots merged in by their keys, which `keys` holds: k·log n key
 * comparisons and one copy of the order, not a sort of the table. Sorts `placed`.
 */
function mergeOrder(kept: Uint32Array, placed: Array<{ readonly key: string; readonly slot: number }>, keys: KeyText): Uint32Array {
  placed.sort((a, b) => compareStrings(a.key, b.key))
  const order = new Uint32Array(kept.length + placed.length)
  let from = 0
  let to = 0
  for (const { key, slot } of placed) {
    let lo = from
    let hi = kept.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (compareKey(keys, kept[mid]!, key) < 0) lo = mid + 1
      else hi = mid
    }
    order.set(kept.subarray(from, lo), to)
    to += lo - from
    from = lo
    order[to++] = slot
  }
  order.set(kept.subarray(from), to)
  return order
}

const COLUMNS = ['clockOf', 'chunkOf', 'keyOffsetOf', 'keyLengthOf', 'dataOffsetOf', 'lengthOf', 'ttlOf', 'authorOf'] as const
type Columns = Pick<PackedParts, (typeof COLUMNS)[number] | 'store'>

/** Eight columns as views of one buffer: one allocation per table, not eight, which keeps the C heap from being cut into pieces a router's memory never gets back. */
function newColumns(capacity: number, used: number): Columns {
  const buffer = new ArrayBuffer(capacity * 36)
  return {
    clockOf: new Float64Array(buffer, 0, capacity),
    chunkOf: new Uint32Array(buffer, capacity * 8, capacity),
    keyOffsetOf: new Uint32Array(buffer, capacity * 12, capacity),
    keyLengthOf: new Uint32Array(buffer, capacity * 16, capacity),
    dataOffsetOf: new Uint32Array(buffer, capacity * 20, capacity),
    lengthOf: new Uint32Array(buffer, capacity * 24, capacity),
    ttlOf: new Int32Array(buffer, capacity * 28, capacity),
    authorOf: new Uint32Array(buffer, capacity * 32, capacity),
    store: { used, capacity },
  }
}

/** The first `size` slots of `p`'s columns, in new ones of `capacity`. */
function copyColumns(p: PackedParts, size: number, capacity: number): Columns {
  const c = newColumns(capacity, size)
  for (const name of COLUMNS) {
    ;(c[name] as Uint32Array).set((p[name] as Uint32Array).subarray(0, size))
  }
  return c
}

function grown(hashes: BigUint64Array, size: number, capacity: number): BigUint64Array {
  const out = new BigUint64Array(capacity)
  out.set(hashes.subarray(0, size))
  return out
}

/**
 * Writes entries' keys and data into `chunks`, in place, a chunk at a time: each is joined (entries' texts from
 * JSON.stringify are trees of pieces) once its data is full, or at `close`. A table built anew and a table
 * appended to fill chunks the same way.
 */
class ChunkWriter {
  readonly chunkChars: number
  /** The open chunk, in pieces, and where it goes in `chunks`. */
  private keys: string[] = []
  private data: string[] = []
  private keyLength = 0
  private dataLength = 0
  private openAt = 0

  constructor(
    private readonly chunks: Chunk[],
    private readonly options: PackOptions,
  ) {
    this.chunkChars = options.chunkChars ?? CHUNK_CHARS
  }

  /** Writes on at the end of `chunks[at]`, a plain chunk, which is replaced when closed: its entries keep their offsets. */
  reopen(at: number): void {
    const chunk = this.chunks[at]!
    this.openAt = at
    this.keys = [chunk.keys]
    this.data = [chunk.data]
    this.keyLength = chunk.keys.length
    this.dataLength = chunk.dataLength
  }

  /** Appends an entry's key and data as `slot`'s, closing the open chunk first when the data would not fit. */
  put(cols: Columns, slot: number, key: string, data: string): void {
    if (this.dataLength > 0 && this.dataLength + data.length > this.chunkChars) this.close()
    if (this.keys.length === 0) this.openAt = this.chunks.length
    cols.chunkOf[slot] = this.openAt
    cols.keyOffsetOf[slot] = this.keyLength
    cols.dataOffsetOf[slot] = this.dataLength
    this.keys.push(key)
    this.data.push(data)
    this.keyLength += key.length
    this.dataLength += data.length
  }

  close(): void {
    if (this.keys.length === 0) return
    this.chunks[this.openAt] = Chunk.of(this.keys.join(''), this.data.join(''), this.options)
    this.keys = []
    this.data = []
    this.keyLength = 0
    this.dataLength = 0
  }
}

/** Authors' names by id; a list given (another table's) is copied before the first name added to it. */
class AuthorIds {
  private ids: Map<string, number> | undefined
  private own = false

  constructor(private list: readonly string[] = []) {}

  get names(): readonly string[] {
    return this.list
  }

  id(author: string): number {
    const ids = (this.ids ??= new Map(this.list.map((a, id) => [a, id])))
    let id = ids.get(author)
    if (id === undefined) {
      if (!this.own) {
        this.list = this.list.slice()
        this.own = true
      }
      id = (this.list as string[]).push(author) - 1
      ids.set(author, id)
    }
    return id
  }
}

/** Collects the entries of a new packed table, copying packed ones and encoding the others. */
class TableBuilder {
  private readonly cols: Columns
  private readonly hashOf: BigUint64Array | undefined
  private readonly chunks: Chunk[] = []
  private readonly writer: ChunkWriter
  private readonly authors = new AuthorIds()
  private readonly extras = new Map<number, string>()
  /** The shared base's chunk index → this table's, or -1 for a chunk left behind. */
  private chunkMap: Int32Array = new Int32Array(0)
  /** The base's slot → this table's, for entries left where they were (copied, or changed in place); -1 for the others. */
  private readonly fromBase: Int32Array
  /** Entries placed anew (new keys, moved keys, all of a table packed from a Map), with their keys. */
  private readonly placed: Array<{ readonly key: string; readonly slot: number }> = []
  private count = 0
  private readonly row: Row = { chunk: 0, keyOffset: 0, dataOffset: 0, keyLength: 0, length: 0, ttl: 0, author: 0, clock: NO_CLOCK, extra: undefined, hash: 0n }

  /** `size` is exactly how many entries will be added. */
  constructor(
    private readonly size: number,
    private readonly base: PackedTable | undefined,
    withHashes: boolean,
    private readonly options: PackOptions,
  ) {
    this.writer = new ChunkWriter(this.chunks, options)
    this.cols = newColumns(size, size)
    this.hashOf = withHashes ? new BigUint64Array(size) : undefined
    this.fromBase = new Int32Array(base?.size ?? 0).fill(-1)
  }

  /** Makes the base's kept chunks this table's too. */
  shareChunks(chunks: readonly Chunk[], keep: readonly boolean[]): void {
    this.chunkMap = new Int32Array(chunks.length).fill(-1)
    chunks.forEach((chunk, i) => {
      if (keep[i]) this.chunkMap[i] = this.chunks.push(chunk) - 1
    })
  }

  /** Copies the base's entry in `slot`; its text is shared unless its chunk is left behind. */
  addPacked(from: PackedTable, slot: number): void {
    const row = this.row
    from.readRow(slot, row)
    const chunk = this.chunkMap[row.chunk]!
    const at = this.count
    const c = this.cols
    if (chunk >= 0) {
      c.chunkOf[at] = chunk
      c.keyOffsetOf[at] = row.keyOffset
      c.dataOffsetOf[at] = row.dataOffset
    } else {
      this.writer.put(c, at, from.rowKey(row), from.rowData(row))
    }
    c.keyLengthOf[at] = row.keyLength
    c.lengthOf[at] = row.length
    this.fromBase[slot] = at
    this.finish(from.authorName(row.author), row.ttl, row.clock, row.extra, row.hash)
  }

  /** Encodes an entry object; `baseSlot` when it replaces the base's entry there, in its place. */
  addEntry(key: string, entry: Entry, baseSlot?: number): void {
    const row = encodeEntry(key, entry)
    const at = this.count
    this.writer.put(this.cols, at, key, row.data)
    this.cols.keyLengthOf[at] = key.length
    this.cols.lengthOf[at] = row.data.length
    if (baseSlot === undefined) this.placed.push({ key, slot: at })
    else this.fromBase[baseSlot] = at
    this.finish(row.author, row.ttl, row.clock, row.extra, 0n)
  }

  get chunkChars(): number {
    return this.writer.chunkChars
  }

  build(): PackedTable {
    if (this.count !== this.size) throw new Error(`packed table built with ${this.count} entries, expected ${this.size}`)
    this.writer.close()
    return new PackedTable({
      ...this.cols,
      order: this.keyOrder(),
      chunks: this.chunks,
      authors: this.authors.names,
      extras: this.extras,
      hashes: this.hashOf,
      options: this.options,
    })
  }

  /**
   * The new table's slots in key order: the base's order for the entries left in their place (their keys did
   * not change), with the entries placed anew, sorted, merged in. A fold of k changes costs k·log n key
   * comparisons and a copy of the order, not a sort of the table.
   */
  private keyOrder(): Uint32Array {
    const kept = new Uint32Array(this.size - this.placed.length)
    let n = 0
    for (const slot of this.base?.keyOrder ?? []) {
      const at = this.fromBase[slot]!
      if (at >= 0) kept[n++] = at
    }
    if (n !== kept.length) throw new Error(`packed table order: ${n} entries kept, expected ${kept.length}`)
    return mergeOrder(kept, this.placed, { ...this.cols, chunks: this.chunks })
  }

  private finish(author: string, ttl: number, clock: number, extra: string | undefined, hash: bigint): void {
    const at = this.count++
    const c = this.cols
    c.authorOf[at] = this.authors.id(author)
    c.ttlOf[at] = ttl
    c.clockOf[at] = clock
    if (this.hashOf) this.hashOf[at] = hash
    if (extra !== undefined) this.extras.set(at, extra)
  }
}

export const TABLE_PACKING: TablePacking = { at: PACK_AT, Table: PackedTable }
