import * as v from 'valibot'
import { jsonLimitProblem, MAX_DATA_CHARS, MAX_DATA_DEPTH } from '../../core/json-limits.js'
import { MAX_KEY_LENGTH, parseJsonText } from '../../core/schema.js'
import { compareStrings } from '../../core/order.js'
import type { Json } from '../../core/types.js'
import { AsyncProtocolError } from './async-frames.js'

/**
 * The JSON a shared-state-async frame carries: libretroshare's serialisation of a `std::map<key, StateEntry>`
 * under `stateSlice`, a map being an array of `{key, value}` and an int64 being `{xint64, xstr64}`:
 * `{"stateSlice":[{"key":K,"value":{"mAuthor":A,"mTtl":{"xint64":N,"xstr64":"N"},"mData":D}}]}`.
 * Only author, TTL (seconds left) and data exist there: malla's `clock` does not cross a C++ hop.
 */
export interface AsyncEntry {
  readonly author: string
  /** Seconds this entry has left, as the C++ daemon counts them (it bleaches once a second). */
  readonly ttl: number
  readonly data: Json
}

/** A read: the C++ CLI sends it to fetch a daemon's whole state for one type. */
export const EMPTY_SLICE = '{"stateSlice":[]}'

/** TTLs beyond this are refused: the C++ daemon keeps int64, malla keeps them exact as JavaScript numbers. */
const MAX_TTL_SECONDS = 2 ** 31 - 1

const Int64 = v.union([
  v.pipe(v.number(), v.integer()),
  // libretroshare reads xint64 and ignores xstr64; a hand-made sender may give only one of them.
  v.pipe(
    v.looseObject({ xint64: v.optional(v.pipe(v.number(), v.integer())), xstr64: v.optional(v.pipe(v.string(), v.regex(/^-?\d{1,19}$/))) }),
    v.check((t) => t.xint64 !== undefined || t.xstr64 !== undefined, 'int64 needs xint64 or xstr64'),
    v.transform((t) => (t.xint64 !== undefined ? t.xint64 : Number(t.xstr64))),
  ),
])

const SliceItem = v.looseObject({
  key: v.pipe(v.string(), v.maxLength(MAX_KEY_LENGTH)),
  value: v.looseObject({ mAuthor: v.string(), mTtl: Int64, mData: v.optional(v.unknown()) }),
})

const Slice = v.looseObject({ stateSlice: v.array(v.unknown()) })

/** Parses a frame's JSON into key → entry; throws PEER (AsyncProtocolError) naming the first problem. */
export function decodeSlice(text: string): Map<string, AsyncEntry> {
  let value: unknown
  try {
    value = parseJsonText(text, 'shared-state-async frame')
  } catch (e) {
    throw new AsyncProtocolError((e as Error).message)
  }
  const slice = v.safeParse(Slice, value)
  if (!slice.success) throw new AsyncProtocolError('frame JSON has no stateSlice array')
  const out = new Map<string, AsyncEntry>()
  for (const [i, raw] of slice.output.stateSlice.entries()) {
    const item = v.safeParse(SliceItem, raw)
    if (!item.success) throw new AsyncProtocolError(`stateSlice[${i}]: ${item.issues.map((x) => `${v.getDotPath(x) ?? ''} ${x.message}`.trim()).join('; ')}`)
    const { key, value: entry } = item.output
    const data = (entry.mData ?? null) as Json
    const problem = jsonLimitProblem(data, MAX_DATA_DEPTH, MAX_DATA_CHARS)
    if (problem !== undefined) throw new AsyncProtocolError(`stateSlice[${i}] (${JSON.stringify(key.slice(0, 80))}): data ${problem}`)
    if (entry.mTtl > MAX_TTL_SECONDS) throw new AsyncProtocolError(`stateSlice[${i}]: TTL ${entry.mTtl} s is beyond ${MAX_TTL_SECONDS}`)
    // A std::map keeps one entry per key; of two in one frame the later is what libretroshare would keep.
    out.set(key, { author: entry.mAuthor, ttl: entry.mTtl, data })
  }
  return out
}

/** Serialises entries the way the C++ daemon does, keys in order (a std::map's order for ASCII keys). */
export function encodeSlice(entries: Iterable<readonly [string, AsyncEntry]>): string {
  const sorted = [...entries].sort(([a], [b]) => compareStrings(a, b))
  const items = sorted.map(([key, e]) => {
    const ttl = Math.max(0, Math.floor(e.ttl))
    return `{"key":${JSON.stringify(key)},"value":{"mAuthor":${JSON.stringify(e.author)},"mTtl":{"xint64":${ttl},"xstr64":"${ttl}"},"mData":${JSON.stringify(e.data)}}}`
  })
  return `{"stateSlice":[${items.join(',')}]}`
}
