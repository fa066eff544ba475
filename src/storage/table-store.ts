import type { Flavour, TypeName } from '../core/types.js'

/** Which table: its flavour (each has its own endpoint and file location) and its type name. */
export interface TableRef {
  readonly flavour: Flavour
  readonly type: TypeName
}

export const refKey = (ref: TableRef): string => `${ref.flavour}/${ref.type}`

/** What a store holds for one table: its text as last saved (undefined if never saved) and a version token. */
export interface StoredTable {
  readonly text: string | undefined
  /**
   * Change records appended since `text` was saved, oldest first (stores with `append` only). Each is
   * `{"set": {key: entry, ...}, "del": [key, ...]}`; applied in order over `text` they give the table.
   */
  readonly journal?: readonly string[]
  readonly version: string
}

/**
 * Keeps tables as text. Adapters know nothing of entries; the replica validates what `load` returns.
 * Every adapter passes the suite in `test/conformance/table-store-suite.ts`.
 */
export interface TableStore {
  /** Every table saved so far. */
  list(): Promise<TableRef[]>
  load(ref: TableRef): Promise<StoredTable>
  /** Durably replaces a table's text (it survives a crash once this resolves), drops its journal, returns the new version. */
  save(ref: TableRef, text: string): Promise<string>
  /**
   * Optional: durably replaces a table's text with `table` serialised as `serializeTable` would, written out
   * piece by piece so no copy of the whole text is ever held. Returns the new version and the bytes written.
   */
  saveTable?(ref: TableRef, table: ReadonlyMap<string, object>): Promise<{ version: string; bytes: number }>
  /**
   * Optional: durably appends one change record to the table's journal, so a small change to a large table
   * costs its own size rather than a rewrite of the whole table. Returns the new version and the journal's size.
   */
  append?(ref: TableRef, record: string): Promise<{ version: string; journalBytes: number }>
  /**
   * Optional, for stores that hold tables in memory: keeps `table` itself as the table's new content and returns
   * the new version; `load` gives its text when asked. A replica never mutates a table it has handed over, so
   * nothing is copied, and no change pays for writing the whole table out as text (on a page, its main thread
   * did that for every signaling record that arrived).
   */
  keep?(ref: TableRef, table: ReadonlyMap<string, object>): Promise<string>
  /**
   * A token that changes whenever the table's text changes, whoever wrote it (another process sharing
   * the same files, say); cheap to read, so a replica can check it before trusting its cached copy.
   * `'absent'` for a table the store does not hold.
   */
  version(ref: TableRef): Promise<string>
  /** Exclusive write access to one table across every user of the same storage; resolves to the release. */
  lock(ref: TableRef): Promise<() => Promise<void>>
  /**
   * Keeps `text`, the parts of a stored table that could not be read, where a person can inspect it,
   * without touching the table itself; returns where. The same text set aside twice is kept once.
   */
  setAside(ref: TableRef, text: string, reason: string): Promise<string>
  close?(): Promise<void>
}
