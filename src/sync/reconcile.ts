import { sha256 } from '@noble/hashes/sha2'
import * as v from 'valibot'
import canonicalizeModule from 'canonicalize'
import { badInput } from '../core/errors.js'
import { FLAVOURS } from '../core/flavours.js'
import { isTextTable, type Flavour, type Json } from '../core/types.js'

const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined

/**
 * malla's delta anti-entropy: two nodes find which keys differ by comparing hash digests of buckets of
 * their tables, then exchange only those entries. See docs/protocol.md, "Reconciliation".
 *
 * Round 1: the asker sends one 64-bit digest per bucket; the answerer replies with the (key, item hash)
 *   pairs of every bucket whose digest differs from its own.
 * Round 2: the asker sends its entries the answerer lacks or holds differently, and names the keys it
 *   wants; the answerer merges, and replies with its entries for those keys.
 * In sync, a table costs one request of `buckets × 16` hex characters and an empty answer.
 */

export const MIN_BUCKETS = 16
export const MAX_BUCKETS = 4096
/** Most keys one round-2 request may name or carry: a bound on the work one request can ask for. */
export const MAX_RECONCILE_KEYS = 20_000
/**
 * Most characters of entries (or item lists) a node puts in one sync request or answer between malla nodes,
 * beyond a single entry that is larger: a quarter of the default body limit, so that nodes converge with the
 * defaults whatever the size of their tables (pushes and reconciliation go page by page).
 */
export const SYNC_PAGE_CHARS = 256 * 1024

type AnyEntry = { readonly data: Json; readonly author: string; readonly [field: string]: unknown }

/** How many buckets a table of `size` entries is cut into: about 8 entries each, a power of two. */
export function bucketCount(size: number): number {
  let b = MIN_BUCKETS
  while (b < MAX_BUCKETS && b * 8 < size) b *= 2
  return b
}

const encoder = new TextEncoder()

/** FNV-1a (32 bits) of the key's UTF-8 bytes: which bucket a key falls in, whatever its version. */
export function keyBucket(key: string, buckets: number): number {
  let h = 0x811c9dc5
  for (const byte of encoder.encode(key)) {
    h ^= byte
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h % buckets
}

const itemHashes = new WeakMap<object, bigint>()

/**
 * An entry's identity as 64 bits: the first 8 bytes of SHA-256 over `key NUL author NUL version NUL data`,
 * where version is the clock (TTL tables; empty without one) or `changes:fortune` (multi-writer) and data is
 * RFC 8785 canonical JSON. The TTL is left out on purpose: it differs between nodes after every bleach,
 * and including it would make every entry look different after each bleach round.
 */
export function itemHash(flavour: Flavour, key: string, entry: AnyEntry): bigint {
  const cached = itemHashes.get(entry)
  if (cached !== undefined) return cached
  const version = FLAVOURS[flavour].version(entry as never)
  const digest = sha256(encoder.encode(`${key}\u0000${entry.author}\u0000${version}\u0000${canonicalize(entry.data) ?? 'null'}`))
  let h = 0n
  for (let i = 0; i < 8; i++) h = (h << 8n) | BigInt(digest[i] as number)
  itemHashes.set(entry, h)
  return h
}

/**
 * `itemHash` of the entry `table` holds under `key` (which it must hold). A packed table keeps each entry's
 * hash beside it: its entries are made afresh at every read, so the cache by entry would never hit.
 */
function tableItemHash(flavour: Flavour, table: ReadonlyMap<string, AnyEntry>, key: string): bigint {
  if (isTextTable(table)) return table.cachedHash(key, (entry) => itemHash(flavour, key, entry)) as bigint
  return itemHash(flavour, key, table.get(key) as AnyEntry)
}

/** Every key of `table` (that `only` takes) with its `itemHash`; a packed table gives them without looking each key up. */
function* hashedKeys(flavour: Flavour, table: ReadonlyMap<string, AnyEntry>, only?: (key: string) => boolean): Generator<[string, bigint]> {
  if (isTextTable(table)) {
    yield* table.keyHashes((key, entry) => itemHash(flavour, key, entry), only)
    return
  }
  for (const [key, entry] of table) if (only === undefined || only(key)) yield [key, itemHash(flavour, key, entry)]
}

const hex16 = (n: bigint) => n.toString(16).padStart(16, '0')

/** One digest per bucket (XOR of its items' hashes; order-free), as `buckets × 16` hex characters. */
export function tableDigests(flavour: Flavour, table: ReadonlyMap<string, AnyEntry>, buckets: number): string {
  const acc = new Array<bigint>(buckets).fill(0n)
  for (const [key, hash] of hashedKeys(flavour, table)) {
    const b = keyBucket(key, buckets)
    acc[b] = (acc[b] as bigint) ^ hash
  }
  return acc.map(hex16).join('')
}

const FlavourSchema = v.picklist(['ttl', 'multiwriter'])
const TypeSchema = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,200}$/))

export const SummaryRequestSchema = v.strictObject({
  v: v.literal(1),
  flavour: FlavourSchema,
  type: TypeSchema,
  buckets: v.pipe(v.number(), v.integer(), v.check((b) => b >= MIN_BUCKETS && b <= MAX_BUCKETS && (b & (b - 1)) === 0, 'a power of two from 16 to 4096')),
  digests: v.pipe(v.string(), v.regex(/^[0-9a-f]*$/, 'lowercase hex')),
})
export type SummaryRequest = v.InferOutput<typeof SummaryRequestSchema>

export const ExchangeRequestSchema = v.strictObject({
  v: v.literal(1),
  flavour: FlavourSchema,
  type: TypeSchema,
  /** The asker's copies of keys the answerer lacks or holds differently (validated by the table schema). */
  entries: v.custom<Record<string, unknown>>((x) => x !== null && typeof x === 'object' && !Array.isArray(x), 'an object of key → entry'),
  /** Keys whose copy the asker wants. */
  want: v.pipe(v.array(v.string()), v.maxLength(MAX_RECONCILE_KEYS)),
})
export type ExchangeRequest = v.InferOutput<typeof ExchangeRequestSchema>

/** Round-1 answer: per differing bucket, the answerer's `[key, itemHash]` pairs. */
export interface SummaryAnswer {
  readonly v: 1
  readonly buckets: Record<string, Array<[string, string]>>
  /** Only some of the differing buckets are listed (the answer reached its page size): ask again after these. */
  readonly partial?: true
}

/** Validates a reconcile request (round 1 or 2) at the edge, with clear errors. */
export function parseReconcileRequest(value: unknown): { round: 1; request: SummaryRequest } | { round: 2; request: ExchangeRequest } {
  if (value !== null && typeof value === 'object' && 'digests' in value) {
    const r = v.safeParse(SummaryRequestSchema, value)
    if (!r.success) throw badInput(`bad reconcile summary: ${v.summarize(r.issues).replace(/\n/g, '; ')}`)
    if (r.output.digests.length !== r.output.buckets * 16) throw badInput(`bad reconcile summary: expected ${r.output.buckets * 16} hex digits of digests`)
    return { round: 1, request: r.output }
  }
  const r = v.safeParse(ExchangeRequestSchema, value)
  if (!r.success) throw badInput(`bad reconcile exchange: ${v.summarize(r.issues).replace(/\n/g, '; ')}`)
  if (Object.keys(r.output.entries).length > MAX_RECONCILE_KEYS) throw badInput(`bad reconcile exchange: more than ${MAX_RECONCILE_KEYS} entries`)
  return { round: 2, request: r.output }
}

/**
 * Round 1, answerer side: the item lists of the buckets whose digest differs, as many whole buckets as fit in
 * `pageChars` (at least one); `partial` when some were left out.
 */
export function answerSummary(request: SummaryRequest, table: ReadonlyMap<string, AnyEntry>, pageChars = SYNC_PAGE_CHARS): SummaryAnswer {
  const ours = tableDigests(request.flavour, table, request.buckets)
  const differing = new Set<number>()
  for (let b = 0; b < request.buckets; b++) {
    if (ours.slice(b * 16, b * 16 + 16) !== request.digests.slice(b * 16, b * 16 + 16)) differing.add(b)
  }
  const lists = new Map<number, Array<[string, string]>>()
  for (const b of differing) lists.set(b, [])
  if (differing.size > 0) {
    for (const [key, hash] of hashedKeys(request.flavour, table, (key) => differing.has(keyBucket(key, request.buckets)))) {
      lists.get(keyBucket(key, request.buckets))?.push([key, hex16(hash)])
    }
  }
  const buckets: Record<string, Array<[string, string]>> = {}
  let chars = 0
  let partial = false
  for (const [b, items] of lists) {
    const size = items.reduce((n, [key]) => n + key.length + 24, 8)
    if (chars > 0 && chars + size > pageChars) {
      partial = true
      break
    }
    buckets[b] = items
    chars += size
  }
  return partial ? { v: 1, buckets, partial: true } : { v: 1, buckets }
}

/**
 * Round 1 result, asker side: which of its entries to give and which keys to want, from the answerer's
 * item lists. A key that differs on both sides is both given and wanted; the merge order settles it.
 */
export function planExchange(flavour: Flavour, table: ReadonlyMap<string, AnyEntry>, buckets: number, answer: unknown): { give: Map<string, AnyEntry>; want: string[] } {
  const parsed = v.safeParse(v.record(v.string(), v.array(v.tuple([v.string(), v.pipe(v.string(), v.regex(/^[0-9a-f]{16}$/))]))), (answer as { buckets?: unknown })?.buckets)
  if (!parsed.success) throw badInput('bad reconcile answer: expected {"buckets": {index: [[key, hash16], ...]}}')
  const theirs = new Map<string, string>()
  const differing = new Set<number>()
  for (const [b, items] of Object.entries(parsed.output)) {
    differing.add(Number(b))
    for (const [key, hash] of items) theirs.set(key, hash)
  }
  const give = new Map<string, AnyEntry>()
  const want: string[] = []
  for (const key of table.keys()) {
    if (!differing.has(keyBucket(key, buckets))) continue
    const mine = hex16(tableItemHash(flavour, table, key))
    const other = theirs.get(key)
    if (other !== mine) give.set(key, table.get(key) as AnyEntry)
    if (other !== undefined && other !== mine) want.push(key)
  }
  for (const key of theirs.keys()) if (!table.has(key)) want.push(key)
  return { give, want }
}

/**
 * The answerer's copies of `want`, for round 2, as many as fit in `pageChars` (at least one); `more` when
 * some were left out, which the asker then asks for again.
 */
export function pick(table: ReadonlyMap<string, AnyEntry>, want: readonly string[], pageChars = SYNC_PAGE_CHARS): { entries: Map<string, AnyEntry>; more: boolean } {
  const entries = new Map<string, AnyEntry>()
  let chars = 0
  for (const key of want) {
    const entry = table.get(key)
    if (entry === undefined) continue
    const size = entryChars(key, entry)
    if (entries.size > 0 && chars + size > pageChars) return { entries, more: true }
    entries.set(key, entry)
    chars += size
  }
  return { entries, more: false }
}

/** About how many characters an entry takes in a body: its key, its JSON, and the punctuation between. */
export function entryChars(key: string, entry: object): number {
  return key.length + JSON.stringify(entry).length + 4
}
