import canonicalizeModule from 'canonicalize'

// The package is CommonJS whose export *is* the function; its typings describe an ES default export instead.
const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined
import { compareClocks } from './clock.js'
import type { Entry, Json, MultiWriterEntry } from './types.js'

/**
 * Compares two JSON values by their RFC 8785 canonical form: the last tiebreak of the malla order,
 * reached only when two copies share clock, author and TTL. The plain serialisation is tried first
 * because equal copies almost always serialise identically.
 */
export function compareData(a: Json, b: Json): number {
  if (jsonEqual(a, b)) return 0
  return compareStrings(canonicalize(a) ?? 'null', canonicalize(b) ?? 'null')
}

/**
 * Structural equality of two JSON values, key order ignored, allocating nothing: merges call it for
 * every replaced key, so it must stay cheap (serialising both sides made a 10,000-key merge 10× slower).
 */
export function jsonEqual(a: Json, b: Json): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i] as Json, b[i] as Json)) return false
    return true
  }
  if (Array.isArray(b)) return false
  let count = 0
  for (const key in a) {
    if (!Object.hasOwn(a, key)) continue
    count++
    if (!Object.hasOwn(b, key) || !jsonEqual(a[key] as Json, b[key] as Json)) return false
  }
  for (const key in b) if (Object.hasOwn(b, key)) count--
  return count === 0
}

/** Code-unit order, the same order RFC 8785 uses for keys and JavaScript uses for `<`. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** True when two values are the same JSON (key order ignored). */
export function sameData(a: Json, b: Json): boolean {
  return jsonEqual(a, b)
}

/**
 * The malla total order between two copies of one key, both carrying a `clock`: clock, then author, then
 * canonical data, then bleachTTL. Two copies of one write (same clock and author) differ in data only when one
 * was changed on the way (json-c writes `{}` back as `[]`): the data decides between them, whatever their TTLs,
 * so that a changed copy that was bleached fewer times cannot win by freshness; between two copies of the same
 * data, the fresher one wins. Any two distinct entries compare unequal, so "keep the greater" is commutative,
 * associative and idempotent.
 */
export function compareMallaEntries(a: Entry, b: Entry): number {
  return (
    compareClocks(a.clock as string, b.clock as string) ||
    compareStrings(a.author, b.author) ||
    compareData(a.data, b.data) ||
    a.bleachTTL - b.bleachTTL
  )
}

/**
 * Whether a remote copy replaces the local one. Between two malla entries, the total order decides;
 * if either lacks a clock, LibreMesh's rule applies: the remote wins only with a strictly higher bleachTTL.
 */
export function remoteWins(remote: Entry, local: Entry | undefined): boolean {
  if (local === undefined) return true
  if (remote.clock !== undefined && local.clock !== undefined) return compareMallaEntries(remote, local) > 0
  return local.bleachTTL < remote.bleachTTL
}

/**
 * LibreMesh's multi-writer rule: more `changes` wins, then the higher `fortune`. Where the Lua code
 * keeps its local copy on a full tie (so two routers can disagree forever), malla breaks the tie by
 * author and canonical data, which every malla node computes alike; a Lua router is unaffected.
 */
export function remoteWinsMultiWriter(remote: MultiWriterEntry, local: MultiWriterEntry | undefined): boolean {
  if (local === undefined) return true
  return (
    (remote.changes - local.changes ||
      remote.fortune - local.fortune ||
      compareStrings(remote.author, local.author) ||
      compareData(remote.data, local.data)) > 0
  )
}

/** Whether two copies of a key are the same copy: every field equal (the copy a neighbour sent, stored here). */
export function sameEntry(a: { readonly [field: string]: unknown }, b: { readonly [field: string]: unknown }): boolean {
  return a === b || jsonEqual(a as Json, b as Json)
}
