import type { Entry, Json, TextTable } from './types.js'

/**
 * Tables at least this large are held packed (see PackedTable); smaller ones stay plain Maps, which are
 * faster to read and cost little at that size. A packed table that shrinks below half of it is unpacked.
 */
export const PACK_AT = 4096

/** How a replica holds its large tables packed: given to it by the daemon (pages leave it out, and never load this module). */
export interface TablePacking {
  /** TTL tables of this many entries or more are packed. */
  readonly at: number
  readonly Table: typeof PackedTable
}

/** Characters of entry data per chunk; an entry larger than this gets a chunk of its own. */
const CHUNK_CHARS = 64 * 1024
/** A chunk less than this share of which is still read by the new table has its live entries moved out of it. */
const KEEP_CHUNK_ABOVE = 0.75

const NO_CLOCK = Number.NaN
const ENTRY_FIELDS = new Set(['data', 'author', 'bleachTTL', 'clock'])
const INT32_MIN = -(2 ** 31)
const INT32_MAX = 2 ** 31 - 1

/** What a packed table is made of: per entry (by slot) its data's place and its fields, and what they refer to. */
interface PackedParts {
  readonly index: ReadonlyMap<string, number>
  readonly chunkOf: Uint32Array
  readonly offsetOf: Uint32Array
  readonly lengthOf: Uint32Array
  readonly ttlOf: Int32Array
  readonly authorOf: Uint32Array
  readonly clockOf: Float64Array
  /** Entries' data, as JSON texts run together: strings, which the JavaScript heap keeps compact as it collects. */
  readonly chunks: readonly string[]
  readonly authors: readonly string[]
  /** Fields other than data, author, bleachTTL and clock, as `"name":value,...` (rare: kept as received). */
  readonly extras: ReadonlyMap<number, string>
  readonly hashes: BigUint64Array | undefined
}

/** One entry's place and fields, as a table being built receives it. */
interface Row {
  chunk: number
  offset: number
  length: number
  ttl: number
  author: number
  clock: number
  extra: string | undefined
  hash: bigint
}

/**
 * A TTL table held compactly, for the 100,000-entry tables a router may hold: each entry's data is kept as
 * its JSON text, run together with others' in strings of up to 64 Ki characters (strings, not byte buffers:
 * the JavaScript heap compacts as it collects, where the C heap under buffers was left in pieces), and its
 * author, TTL and clock in typed arrays. A plain Map of entry objects costs ~460 bytes per entry of ~200
 * bytes of data (the parsed object, its strings, the entry object); packed, ~280 (the data's characters, its key
 * and the index, ~30 bytes of columns).
 *
 * It reads like a Map of entries (`ReadonlyMap<string, Entry>`), so every table operation works on it, but
 * each `get` makes a fresh entry (parsing its data): what needs many entries' text without their values
 * (saving, full-table sync) asks `entryJson`, which parses nothing. It is never changed: a change makes a
 * new table (`fold`), which shares the unchanged entries' text.
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
  static pack(table: ReadonlyMap<string, Entry>): PackedTable {
    return PackedTable.fold(table, new Map(), new Set())
  }

  /**
   * `base` with `changes` applied (an undefined value deletes the key), in a Map's order: the base's keys
   * where they were, then `moved` keys (deleted and written again) and new keys in the order of `changes`.
   * When `base` is packed, its unchanged entries are copied without being read, and chunks it mostly no
   * longer reads are left behind (their live entries copied on), so dead bytes stay under a third.
   */
  static fold(base: ReadonlyMap<string, Entry>, changes: ReadonlyMap<string, Entry | undefined>, moved: ReadonlySet<string>): PackedTable {
    let size = base.size
    for (const [key, entry] of changes) {
      if (entry === undefined) size -= base.has(key) ? 1 : 0
      else size += base.has(key) ? 0 : 1
    }
    const builder = new TableBuilder(size, base instanceof PackedTable && base.hashes !== undefined)
    if (base instanceof PackedTable) {
      const keep = base.chunksWorthKeeping(changes)
      builder.shareChunks(base.p.chunks, keep)
      for (const [key, slot] of base.p.index) {
        if (changes.has(key)) {
          const entry = changes.get(key)
          if (entry !== undefined && !moved.has(key)) builder.addEntry(key, entry)
        } else {
          builder.addPacked(key, base, slot)
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
    for (const [key, entry] of changes) if (entry !== undefined && (moved.has(key) || !base.has(key))) builder.addEntry(key, entry)
    return builder.build()
  }

  /**
   * The table after one bleach round: every TTL one less, entries below 2 dropped (`bleachTable`'s rule),
   * without reading any entry's data. Returns the dropped keys too.
   */
  bleached(): { table: PackedTable; dropped: string[] } {
    const dropped: string[] = []
    for (const [key, slot] of this.p.index) if (this.p.ttlOf[slot]! < 2) dropped.push(key)
    if (dropped.length > 0) {
      return { table: PackedTable.fold(this, new Map(dropped.map((k) => [k, undefined])), new Set()).bleached().table, dropped }
    }
    const ttl = this.p.ttlOf.map((t) => t - 1)
    const table = new PackedTable({ ...this.p, ttlOf: ttl, hashes: this.hashes })
    return { table, dropped }
  }

  get size(): number {
    return this.p.index.size
  }

  has(key: string): boolean {
    return this.p.index.has(key)
  }

  get(key: string): Entry | undefined {
    const slot = this.p.index.get(key)
    return slot === undefined ? undefined : this.entryAt(slot)
  }

  /** The entry's JSON text, as `JSON.stringify` of `get(key)` would give it, without parsing its data. */
  entryJson(key: string): string | undefined {
    const slot = this.p.index.get(key)
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
    const slot = this.p.index.get(key)
    if (slot === undefined) return undefined
    this.hashes ??= new BigUint64Array(this.p.chunkOf.length)
    const known = this.hashes[slot]!
    if (known !== 0n) return known
    const made = make(this.entryAt(slot))
    this.hashes[slot] = made
    return made
  }

  /** Characters of entry data this table uses, and characters of the chunks it holds (what it keeps alive). */
  textSize(): { live: number; held: number } {
    let live = 0
    for (let slot = 0; slot < this.p.lengthOf.length; slot++) live += this.p.lengthOf[slot]!
    return { live, held: this.p.chunks.reduce((n, c) => n + c.length, 0) }
  }

  keys(): MapIterator<string> {
    return this.p.index.keys()
  }

  *entries(): MapIterator<[string, Entry]> {
    for (const [key, slot] of this.p.index) yield [key, this.entryAt(slot)]
  }

  *values(): MapIterator<Entry> {
    for (const slot of this.p.index.values()) yield this.entryAt(slot)
  }

  [Symbol.iterator](): MapIterator<[string, Entry]> {
    return this.entries()
  }

  forEach(callback: (value: Entry, key: string, map: ReadonlyMap<string, Entry>) => void, thisArg?: unknown): void {
    for (const [key, slot] of this.p.index) callback.call(thisArg, this.entryAt(slot), key, this)
  }

  private dataText(slot: number): string {
    const offset = this.p.offsetOf[slot]!
    return this.p.chunks[this.p.chunkOf[slot]!]!.slice(offset, offset + this.p.lengthOf[slot]!)
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

  /** Which of this table's chunks a fold with `changes` keeps: those it still reads more than KEEP_CHUNK_ABOVE of. */
  private chunksWorthKeeping(changes: ReadonlyMap<string, unknown>): boolean[] {
    const live = new Float64Array(this.p.chunks.length)
    for (const [key, slot] of this.p.index) if (!changes.has(key)) live[this.p.chunkOf[slot]!]! += this.p.lengthOf[slot]!
    return this.p.chunks.map((c, i) => live[i]! > KEEP_CHUNK_ABOVE * c.length)
  }

  /** Builder access to one packed entry. */
  readRow(slot: number, row: Row): void {
    row.chunk = this.p.chunkOf[slot]!
    row.offset = this.p.offsetOf[slot]!
    row.length = this.p.lengthOf[slot]!
    row.ttl = this.p.ttlOf[slot]!
    row.author = this.p.authorOf[slot]!
    row.clock = this.p.clockOf[slot]!
    row.extra = this.p.extras.get(slot)
    row.hash = this.hashes?.[slot] ?? 0n
  }

  /** Builder access: an entry's data text, and an author's name. */
  dataOf(row: Row): string {
    return this.p.chunks[row.chunk]!.slice(row.offset, row.offset + row.length)
  }

  authorName(id: number): string {
    return this.p.authors[id]!
  }

}

/** Collects the entries of a new packed table, copying packed ones and encoding the others. */
class TableBuilder {
  private readonly index = new Map<string, number>()
  private readonly chunkOf: Uint32Array
  private readonly offsetOf: Uint32Array
  private readonly lengthOf: Uint32Array
  private readonly ttlOf: Int32Array
  private readonly authorOf: Uint32Array
  private readonly clockOf: Float64Array
  private readonly hashOf: BigUint64Array | undefined
  private readonly chunks: string[] = []
  /** The chunk being written, in pieces: it is joined into one string when full, or when the table is built. */
  private open: string[] = []
  private openLength = 0
  private readonly authors: string[] = []
  private readonly authorIds = new Map<string, number>()
  private readonly extras = new Map<number, string>()
  /** The shared base's chunk index → this table's, or -1 for a chunk left behind. */
  private chunkMap: Int32Array = new Int32Array(0)
  private count = 0
  private readonly row: Row = { chunk: 0, offset: 0, length: 0, ttl: 0, author: 0, clock: NO_CLOCK, extra: undefined, hash: 0n }

  /**
   * `size` is exactly how many entries will be added. The columns are views of one buffer: one allocation per
   * table, not six, which keeps the C heap from being cut into pieces a router's memory never gets back.
   */
  constructor(private readonly size: number, withHashes: boolean) {
    const buffer = new ArrayBuffer(size * 28)
    this.clockOf = new Float64Array(buffer, 0, size)
    this.chunkOf = new Uint32Array(buffer, size * 8, size)
    this.offsetOf = new Uint32Array(buffer, size * 12, size)
    this.lengthOf = new Uint32Array(buffer, size * 16, size)
    this.ttlOf = new Int32Array(buffer, size * 20, size)
    this.authorOf = new Uint32Array(buffer, size * 24, size)
    this.hashOf = withHashes ? new BigUint64Array(size) : undefined
  }

  /** Makes the base's kept chunks this table's too. */
  shareChunks(chunks: readonly string[], keep: readonly boolean[]): void {
    this.chunkMap = new Int32Array(chunks.length).fill(-1)
    chunks.forEach((chunk, i) => {
      if (keep[i]) this.chunkMap[i] = this.chunks.push(chunk) - 1
    })
  }

  /** Copies a packed entry; its bytes are shared unless its chunk is left behind. */
  addPacked(key: string, from: PackedTable, slot: number): void {
    const row = this.row
    from.readRow(slot, row)
    const chunk = this.chunkMap[row.chunk]!
    const at = this.count
    if (chunk >= 0) {
      this.chunkOf[at] = chunk
      this.offsetOf[at] = row.offset
      this.lengthOf[at] = row.length
    } else {
      this.put(from.dataOf(row))
    }
    this.finish(key, from.authorName(row.author), row.ttl, row.clock, row.extra, row.hash)
  }

  /** Encodes an entry object. */
  addEntry(key: string, entry: Entry): void {
    if (!Number.isInteger(entry.bleachTTL) || entry.bleachTTL < INT32_MIN || entry.bleachTTL > INT32_MAX || typeof entry.author !== 'string') {
      throw new TypeError(`entry ${JSON.stringify(key.slice(0, 80))} cannot be packed: bad author or bleachTTL`)
    }
    this.put(JSON.stringify(entry.data ?? null))
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
    this.finish(key, entry.author, entry.bleachTTL, numeric ? clock : NO_CLOCK, extra, 0n)
  }

  build(): PackedTable {
    if (this.count !== this.size) throw new Error(`packed table built with ${this.count} entries, expected ${this.size}`)
    this.close()
    return new PackedTable({
      index: this.index,
      chunkOf: this.chunkOf,
      offsetOf: this.offsetOf,
      lengthOf: this.lengthOf,
      ttlOf: this.ttlOf,
      authorOf: this.authorOf,
      clockOf: this.clockOf,
      chunks: this.chunks,
      authors: this.authors,
      extras: this.extras,
      hashes: this.hashOf,
    })
  }

  /** Appends an entry's data text to the open chunk, closing it first when the text would not fit. */
  private put(text: string): void {
    if (this.openLength > 0 && this.openLength + text.length > CHUNK_CHARS) this.close()
    const at = this.count
    this.chunkOf[at] = this.chunks.length
    this.offsetOf[at] = this.openLength
    this.lengthOf[at] = text.length
    this.open.push(text)
    this.openLength += text.length
  }

  /** Joins the open chunk into one flat string (entries' texts from JSON.stringify are trees of pieces). */
  private close(): void {
    if (this.openLength === 0) return
    this.chunks.push(this.open.join(''))
    this.open = []
    this.openLength = 0
  }

  private finish(key: string, author: string, ttl: number, clock: number, extra: string | undefined, hash: bigint): void {
    const at = this.count++
    let id = this.authorIds.get(author)
    if (id === undefined) {
      id = this.authors.push(author) - 1
      this.authorIds.set(author, id)
    }
    this.authorOf[at] = id
    this.ttlOf[at] = ttl
    this.clockOf[at] = clock
    if (this.hashOf) this.hashOf[at] = hash
    if (extra !== undefined) this.extras.set(at, extra)
    this.index.set(key, at)
  }
}

export const TABLE_PACKING: TablePacking = { at: PACK_AT, Table: PackedTable }
