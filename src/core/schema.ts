import * as v from 'valibot'
import { isValidClock } from './clock.js'
import { badInput } from './errors.js'
import { jsonLimitProblem, MAX_DATA_CHARS, MAX_DATA_DEPTH, MAX_ENTRY_CHARS, MAX_ENTRY_DEPTH, MAX_TEXT_DEPTH, nestsDeeperThan } from './json-limits.js'
import { isTextTable, type Entry, type Flavour, type Json, type MultiWriterEntry, type MultiWriterTable, type Table, type TypeName } from './types.js'

/**
 * The one place where bytes from outside (HTTP bodies, files, CLI stdin) become typed tables.
 * Everything past this module trusts its input. It accepts what real LibreMesh routers send:
 * `[]` for an empty table (json-c), removed entries without a `data` field, extra entry fields.
 */

export const TYPE_NAME_PATTERN = /^[A-Za-z0-9_-]+$/
export const MAX_TYPE_NAME_LENGTH = 200
export const MAX_KEY_LENGTH = 4096
const INT32 = { min: -(2 ** 31), max: 2 ** 31 - 1 }

export function parseTypeName(name: unknown): TypeName {
  if (typeof name !== 'string' || !TYPE_NAME_PATTERN.test(name) || name.length > MAX_TYPE_NAME_LENGTH) {
    throw badInput(`bad type name ${JSON.stringify(name)}: expected 1-${MAX_TYPE_NAME_LENGTH} characters of [A-Za-z0-9_-]`)
  }
  return name as TypeName
}

export function isTypeName(name: unknown): name is TypeName {
  return typeof name === 'string' && TYPE_NAME_PATTERN.test(name) && name.length <= MAX_TYPE_NAME_LENGTH
}

const int32 = v.pipe(v.number(), v.integer(), v.minValue(INT32.min), v.maxValue(INT32.max))

const EntrySchema = v.looseObject({
  data: v.optional(v.unknown()),
  author: v.string(),
  bleachTTL: int32,
  clock: v.optional(v.pipe(v.string(), v.check(isValidClock, 'clock must be a decimal integer string below 2^53 - 1'))),
})

const MultiWriterEntrySchema = v.looseObject({
  data: v.optional(v.unknown()),
  author: v.string(),
  changes: v.pipe(v.number(), v.integer(), v.minValue(0)),
  fortune: v.pipe(v.number(), v.finite()),
})

function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  return issues.map((i) => `${v.getDotPath(i) ? `${v.getDotPath(i)}: ` : ''}${i.message}`).join('; ')
}

const shorten = (key: string) => (key.length > 80 ? `${key.slice(0, 80)}…` : key)

/**
 * Parses JSON text, turning a syntax error into a BAD_INPUT error that says where. Text nested deeper than
 * MAX_TEXT_DEPTH is refused without parsing it.
 */
export function parseJsonText(text: string, what: string): unknown {
  if (nestsDeeperThan(text, MAX_TEXT_DEPTH)) throw badInput(`${what} is nested deeper than ${MAX_TEXT_DEPTH} levels`)
  try {
    return JSON.parse(text)
  } catch (e) {
    throw badInput(`${what} is not valid JSON: ${(e as Error).message}`, { cause: e })
  }
}

function objectKeys(value: unknown, what: string): Record<string, unknown> {
  // json-c writes an empty object as an empty array.
  if (Array.isArray(value) && value.length === 0) return {}
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw badInput(`${what} must be a JSON object of key → entry`)
  }
  return value as Record<string, unknown>
}

/** An entry that failed validation, as received, with the reason: what a lenient parse leaves out. */
export interface RejectedEntry {
  readonly key: string
  readonly value: unknown
  readonly reason: string
}

/**
 * Validates every entry of a table. Strict (no `rejected` list): the first bad entry throws BAD_INPUT, as
 * input from the network must be all good or refused. Lenient: bad entries go to `rejected` and the rest
 * is kept, as a stored table must lose nothing but what cannot be read.
 */
function parseEntries<E>(
  value: unknown,
  what: string,
  schema: v.GenericSchema<unknown, Record<string, unknown>>,
  rejected?: RejectedEntry[],
): Map<string, E> {
  const source = objectKeys(value, what)
  const table = new Map<string, E>()
  // A table's entries come from a handful of authors: one string each instead of one per entry
  // (JSON.parse makes a new string for every value), which is a tenth of a large table's memory.
  const authors = new Map<string, string>()
  for (const key of Object.keys(source)) {
    const reason = entryProblem(key, source[key], schema)
    if (typeof reason === 'string') {
      if (rejected === undefined) throw badInput(`${what}: entry ${JSON.stringify(shorten(key))}: ${reason}`)
      rejected.push({ key, value: source[key], reason })
      continue
    }
    const entry = reason.output as { data?: unknown; author: string }
    let author = authors.get(entry.author)
    if (author === undefined) authors.set(entry.author, (author = entry.author))
    entry.author = author
    // LibreMesh drops nil values, so a removed entry arrives without `data`.
    if (entry.data === undefined) entry.data = null
    table.set(key, entry as E)
  }
  return table
}

/** Why one entry is refused, or its validated copy. */
function entryProblem(key: string, value: unknown, schema: v.GenericSchema<unknown, Record<string, unknown>>): string | { output: Record<string, unknown> } {
  if (key.length > MAX_KEY_LENGTH) return `key longer than ${MAX_KEY_LENGTH} characters`
  const problem = jsonLimitProblem(value, MAX_ENTRY_DEPTH, MAX_ENTRY_CHARS)
  if (problem !== undefined) return problem
  const result = v.safeParse(schema, value)
  return result.success ? { output: result.output } : describeIssues(result.issues)
}

/** A stored table, keeping every valid entry and listing the others in `rejected` (see parseEntries). */
export function parseStoredTable(flavour: Flavour, value: unknown, what: string, rejected: RejectedEntry[]): Map<string, Entry | MultiWriterEntry> {
  return flavour === 'ttl' ? parseEntries<Entry>(value, what, EntrySchema, rejected) : parseEntries<MultiWriterEntry>(value, what, MultiWriterEntrySchema, rejected)
}

/** A LibreMesh table (`{key: {data, author, bleachTTL, ...}}` or `[]`), validated. */
export function parseTable(value: unknown, what = 'table'): Table {
  return parseEntries<Entry>(value, what, EntrySchema)
}

export function parseMultiWriterTable(value: unknown, what = 'table'): MultiWriterTable {
  return parseEntries<MultiWriterEntry>(value, what, MultiWriterEntrySchema)
}

/** `{key: data}` as `insert` takes it on stdin. */
export function parseInsertValues(value: unknown, what = 'insert input'): Array<[string, Json]> {
  if (Array.isArray(value) && value.length === 0) return []
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw badInput(`${what} must be a JSON object of key → data`)
  }
  return Object.keys(value).map((key) => {
    if (key.length > MAX_KEY_LENGTH) throw badInput(`${what}: a key is longer than ${MAX_KEY_LENGTH} characters`)
    const data = (value as Record<string, Json>)[key] as Json
    checkData(key, data, what)
    return [key, data]
  })
}

/**
 * Throws BAD_INPUT unless `data` is something this node may write under `key`: within the depth and size
 * limits, with finite numbers only, so the entry can always be saved, relayed and loaded again.
 */
export function checkData(key: string, data: unknown, what: string): void {
  if (key.length > MAX_KEY_LENGTH) throw badInput(`${what}: a key is longer than ${MAX_KEY_LENGTH} characters`)
  const problem = data === undefined ? 'no data (use null to remove)' : jsonLimitProblem(data, MAX_DATA_DEPTH, MAX_DATA_CHARS)
  if (problem !== undefined) throw badInput(`${what}: ${JSON.stringify(shorten(key))}: ${problem}`)
}

/** `["key", ...]` as `remove` takes it on stdin. */
export function parseKeyList(value: unknown, what = 'remove input'): string[] {
  const result = v.safeParse(v.array(v.pipe(v.string(), v.maxLength(MAX_KEY_LENGTH))), value)
  if (!result.success) throw badInput(`${what} must be a JSON array of key strings`)
  return result.output
}

/** A bleachTTL given by a person (CLI flag, query string): a positive integer. */
export function parseTtl(value: unknown): number {
  const n = typeof value === 'string' && /^[0-9]+$/.test(value) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > INT32.max) {
    throw badInput(`bad TTL ${JSON.stringify(value)}: expected a positive integer`)
  }
  return n
}

/** Serialises a table the way the wire and the data files carry it: one JSON object. */
export function serializeTable(table: ReadonlyMap<string, object>): string {
  // A packed table's entries are already text: joined, not parsed into objects and stringified again.
  if (isTextTable(table)) return [...serializeTableChunks(table)].join('')
  return JSON.stringify(Object.fromEntries(table))
}

/** Keys an object lists first, in ascending numeric order (ECMAScript array indices: canonical integers below 2³²−1). */
const isArrayIndex = (key: string): boolean => /^(?:0|[1-9][0-9]{0,9})$/.test(key) && Number(key) < 4294967295

/**
 * The same text as `serializeTable`, character for character, in pieces of about `chunkChars`: a 100,000-entry
 * table is ~28 MB of JSON, and building it as one string (plus the object it is stringified from) more than
 * doubles a router's memory for the moment of a save. Keys that are array indices come first in numeric order,
 * as they do in the object `serializeTable` builds.
 */
export function* serializeTableChunks(table: ReadonlyMap<string, object>, chunkChars = 64 * 1024): Generator<string> {
  const indices: string[] = []
  for (const key of table.keys()) if (isArrayIndex(key)) indices.push(key)
  indices.sort((a, b) => Number(a) - Number(b))
  let out = '{'
  let first = true
  const packed = isTextTable(table) ? table : undefined
  const put = (key: string): string | undefined => {
    const value = packed ? packed.entryJson(key) : JSON.stringify(table.get(key))
    if (value === undefined) return undefined
    out += `${first ? '' : ','}${JSON.stringify(key)}:${value}`
    first = false
    if (out.length < chunkChars) return undefined
    const piece = out
    out = ''
    return piece
  }
  for (const key of indices) {
    const piece = put(key)
    if (piece !== undefined) yield piece
  }
  for (const key of table.keys()) {
    if (indices.length > 0 && isArrayIndex(key)) continue
    const piece = put(key)
    if (piece !== undefined) yield piece
  }
  yield out + '}'
}
