/** Any value JSON can carry: what an entry's `data` may hold. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

declare const typeNameBrand: unique symbol
/** A data type (table) name, checked against LibreMesh's `^[A-Za-z0-9_-]+$`: safe as a file name and URL segment. */
export type TypeName = string & { readonly [typeNameBrand]: true }

/**
 * One entry of a LibreMesh shared-state table, exactly as routers store it.
 * `data: null` is a removal (LibreMesh routers omit the field instead; parsing restores the null).
 * `clock` is malla's extra field (see docs/protocol.md): present on entries written by malla nodes,
 * it gives the total order that fixes LibreMesh's TTL-only rule. Other extra fields are kept as received.
 */
export interface Entry {
  readonly data: Json
  readonly author: string
  readonly bleachTTL: number
  readonly clock?: string
  readonly [extra: string]: unknown
}

/** A table: key → entry. Entries are never mutated in place: a change replaces the object. */
export type Table = Map<string, Entry>

/**
 * A table that holds its entries as JSON text (core/packed-table.ts): what reads many of its entries asks it
 * for their text or their cached hash, instead of having each entry made and parsed.
 */
export interface TextTable extends ReadonlyMap<string, Entry> {
  /** `JSON.stringify(get(key))`, without parsing anything. */
  entryJson(key: string): string | undefined
  /** A hash of the entry under `key`, made by `make` once and then kept with the entry. */
  cachedHash(key: string, make: (entry: Entry) => bigint): bigint | undefined
  /** Every key with its entry's hash (as `cachedHash` keeps them), in the table's order; only the keys `only` takes. */
  keyHashes(make: (key: string, entry: Entry) => bigint, only?: (key: string) => boolean): IterableIterator<[string, bigint]>
}

/** Told by shape, so that modules which only read tables need not load the packed table's code (pages never hold one). */
export function isTextTable(table: ReadonlyMap<string, unknown>): table is TextTable {
  return typeof (table as Partial<TextTable>).entryJson === 'function'
}

/**
 * What the table operations need of a table they change: a Map satisfies it, and so does the replica's
 * draft over a committed table (`replica/draft-table.ts`).
 */
export interface WritableTable<E> extends ReadonlyMap<string, E> {
  set(key: string, value: E): unknown
  delete(key: string): boolean
}

/**
 * One entry of LibreMesh's multi-writer variant (`/cgi-bin/shared-state-multiwriter/<type>`):
 * ordered by `changes` (a per-key edit counter) and then `fortune` (a random tiebreak); no TTL, never bleached.
 */
export interface MultiWriterEntry {
  readonly data: Json
  readonly author: string
  readonly changes: number
  readonly fortune: number
  readonly lastModified?: number
  readonly [extra: string]: unknown
}

export type MultiWriterTable = Map<string, MultiWriterEntry>

/** The two table flavours a node keeps, each with its own endpoint and merge rule. */
export type Flavour = 'ttl' | 'multiwriter'
