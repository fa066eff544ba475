import type { WriteClock } from './clock.js'
import { parseMultiWriterTable, parseTable } from './schema.js'
import { mergeMultiWriter, mergeTable, type Changes } from './table-ops.js'
import type { Entry, Flavour, MultiWriterEntry, Table, WritableTable } from './types.js'

/**
 * What differs between the two kinds of table, in one place: how a table of each is validated, merged, and
 * which LibreMesh endpoint carries it. Code that handles "any table" looks its flavour up here instead of
 * branching on it.
 */
export interface FlavourRules {
  /** Validates a received table (BAD_INPUT with `what` in the message). */
  parse(value: unknown, what: string): Map<string, Entry | MultiWriterEntry>
  /** Merges a received table into ours, entry by entry. */
  merge(table: WritableTable<Entry | MultiWriterEntry>, remote: ReadonlyMap<string, Entry | MultiWriterEntry>, clock: WriteClock): Changes
  /** The LibreMesh endpoint's path before the type name. */
  readonly endpoint: string
  /** What tells two copies of a key apart, the data aside (reconciliation hashes it): the clock, or changes and fortune. */
  version(entry: Entry | MultiWriterEntry): string
}

export const FLAVOURS: Readonly<Record<Flavour, FlavourRules>> = {
  ttl: {
    parse: (value, what) => parseTable(value, what),
    merge: (table, remote, clock) => mergeTable(table as WritableTable<Entry>, remote as Table, clock),
    endpoint: '/cgi-bin/shared-state/',
    version: (entry) => String((entry as Entry).clock ?? ''),
  },
  multiwriter: {
    parse: (value, what) => parseMultiWriterTable(value, what),
    merge: (table, remote) => mergeMultiWriter(table as WritableTable<MultiWriterEntry>, remote as ReadonlyMap<string, MultiWriterEntry>),
    endpoint: '/cgi-bin/shared-state-multiwriter/',
    version: (entry) => `${String((entry as MultiWriterEntry).changes)}:${String((entry as MultiWriterEntry).fortune)}`,
  },
}
