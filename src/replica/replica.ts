import { createNanoEvents, type Emitter, type Unsubscribe } from 'nanoevents'
import { WriteClock } from '../core/clock.js'
import { isMallaError, MallaError } from '../core/errors.js'
import type { Logger } from '../core/log.js'
import { silentLogger } from '../core/log.js'
import { checkData, parseJsonText, parseStoredTable, type RejectedEntry, serializeTable } from '../core/schema.js'
import {
  bleachTable,
  type Changes,
  DEFAULT_TTL,
  insertEntries,
  insertMultiWriter,
  isSubstantial,
  mergeChosenEntries,
  removeKeys,
} from '../core/table-ops.js'
import type { Entry, Flavour, Json, MultiWriterTable, Table, TypeName, WritableTable } from '../core/types.js'
import { DraftTable } from './draft-table.js'
import type { TablePacking } from '../core/packed-table.js'
import { FLAVOURS } from '../core/flavours.js'
import { jsonEqual } from '../core/order.js'
import { refKey, type StoredTable, type TableRef, type TableStore } from '../storage/table-store.js'

/** A substantial change to one table, after it is durable. */
export interface ChangeEvent {
  readonly flavour: Flavour
  readonly type: TypeName
  readonly keys: readonly string[]
  /** 'local' for this replica's own writes and merges, 'external' for writes found on disk (another process). */
  readonly origin: 'local' | 'external'
  /** The table right after the change (never mutated later): listeners read the changed entries from it. */
  readonly table: ReadonlyMap<string, object>
  /**
   * For keys whose new copy arrived from a link (a merge given a `source`), that link's id: sync never sends a
   * change back where it came from. Keys written here, or merged without a source, are not in it.
   */
  readonly sources?: ReadonlyMap<string, string>
}

export interface ReplicaEvents {
  /** A substantial change, once it is durable: for hooks, feeds, anything that must not see a write the disk refused. */
  change(event: ChangeEvent): void
  /**
   * The same change as soon as it is applied in memory, before it is locked and saved: for spreading it to
   * neighbours without waiting for the disk. It is computed on the table as this process knows it; when the
   * stored copy turns out to have been changed by another process, the batch is applied again to that copy
   * and this event comes once more with that result. If the save then fails, memory goes back to the disk's
   * copy and no `change` follows; neighbours may already hold the entries, which is harmless in a CRDT.
   */
  applied(event: ChangeEvent): void
  /**
   * An `applied` change that could not be saved (the disk refused it, or the lock could not be had): memory
   * is back to the stored copy, given here as `table`, and `keys` are the keys announced. Whoever kept the
   * announced entries (a change log) must record that these keys hold their stored entries again.
   */
  reverted(event: ChangeEvent): void
}

/** A table as it stood right after an operation, as a map and as the JSON text that was saved. */
export interface Snapshot<E = Table> {
  readonly table: ReadonlyMap<string, E extends Map<string, infer V> ? V : never>
  readonly text: string
  /** Keys this operation changed substantially (see `isSubstantial`). */
  readonly changed: readonly string[]
}

export interface ReplicaOptions {
  readonly store: TableStore
  /** This node's name, written as `author` (LibreMesh uses the hostname). */
  readonly author: string
  readonly now?: () => number
  readonly random?: () => number
  readonly log?: Logger
  /** Most tables (of both flavours) this replica creates; a write that would create one more is refused (TOO_LARGE). */
  readonly maxTables?: number
  /**
   * What of a received table may be merged at all, given what the table holds now; what may not is dropped,
   * as if it never came, so this node neither keeps nor relays it. How types whose entries must be signed keep
   * forgeries out, and how a table keeps each author to a quota (§18.2).
   */
  readonly admit?: Admission
  /**
   * Holds large TTL tables packed (core/packed-table.ts: ~60% of the memory of entry objects; each read parses its entry).
   * The daemon gives it; pages leave it out and never load that code.
   */
  readonly packing?: TablePacking
}

/**
 * What of `remote` a replica merges, given the table it holds (`current`). `chargeChecks`, when the merge has
 * one, is charged for each signature the admission verifies and throws (BUSY) when the sender cannot afford
 * more: the entries left are dropped for now, and come again with a later sync.
 */
export type Admission = (ref: TableRef, remote: ReadonlyMap<string, object>, current: ReadonlyMap<string, object>, chargeChecks?: (checks: number) => void) => ReadonlyMap<string, object>

/** Default bound on tables: LibreMesh networks use a few dozen types; anyone may write a new one. */
export const MAX_TABLES = 1024

type AnyEntry = { readonly data: Json; readonly author: string }
type AnyTable = Map<string, AnyEntry>
/** A committed table: a plain Map, or a committed draft over one (see DraftTable.over); never mutated either way. */
type HeldTable = ReadonlyMap<string, AnyEntry>
type Op = (table: WritableTable<AnyEntry>) => Changes

/** The version every store gives a table it does not hold (see TableStore.version). */
const ABSENT = 'absent'

interface Pending {
  readonly op: Op
  /** False for reads, which need no lock: stores replace tables atomically, so a read never sees half a write. */
  readonly write: boolean
  /** Save the whole table even for a small change (compaction of the journal). */
  readonly full?: boolean
  /** The link a merge came from (ChangeEvent.sources). */
  readonly source?: string | undefined
  readonly resolve: (s: Snapshot<AnyTable>) => void
  readonly reject: (e: unknown) => void
}

interface Slot {
  readonly ref: TableRef
  table: HeldTable
  version: string | undefined
  /** Size of the stored table's journal, and of its last whole save, in bytes: when to compact. */
  journalBytes: number
  baseBytes: number
  /** Parts of the stored copy could not be read: the next save rewrites it whole, without them. */
  rewrite: boolean
  pending: Pending[]
  draining: boolean
}

/**
 * A node's copy of its tables, kept in a `TableStore`. Each operation runs against the freshest stored
 * copy (another process may have written it), is saved durably, and only then resolves and emits `change`.
 * Operations on one table are queued and committed in groups: one lock, one load check and one save serve
 * every operation that arrived meanwhile, which keeps a busy router's disk writes bounded.
 */
export class Replica {
  readonly author: string
  private readonly store: TableStore
  private readonly clock: WriteClock
  private readonly random: () => number
  private readonly now: () => number
  private readonly log: Logger
  private readonly slots = new Map<string, Slot>()
  private readonly maxTables: number
  private readonly admit: ReplicaOptions['admit']
  private readonly packing: TablePacking | undefined
  /** Tables the store holds, as far as this replica knows (read once, then kept up to date by its saves). */
  private stored: Set<string> | undefined
  private readonly emitter: Emitter<ReplicaEvents> = createNanoEvents<ReplicaEvents>()

  constructor(options: ReplicaOptions) {
    this.store = options.store
    this.author = options.author
    this.now = options.now ?? Date.now
    this.clock = new WriteClock(this.now)
    this.random = options.random ?? Math.random
    this.log = options.log ?? silentLogger
    this.maxTables = options.maxTables ?? MAX_TABLES
    this.admit = options.admit
    this.packing = options.packing
  }

  on<E extends keyof ReplicaEvents>(event: E, callback: ReplicaEvents[E]): Unsubscribe {
    return this.emitter.on(event, callback)
  }

  /** Tables held, of one flavour or all. */
  async list(flavour?: Flavour): Promise<TableRef[]> {
    const refs = new Map((await this.store.list()).map((r) => [refKey(r), r]))
    // Also a table whose first write is applied but not saved yet: a neighbour added right now must hear of it.
    for (const [key, slot] of this.slots) if (slot.table.size > 0 || slot.draining) refs.set(key, slot.ref)
    const all = [...refs.values()]
    return flavour === undefined ? all : all.filter((r) => r.flavour === flavour)
  }

  /** The table as stored now (reloaded first if another writer changed it). */
  async get(type: TypeName): Promise<Snapshot> {
    return this.read({ flavour: 'ttl', type }) as Promise<Snapshot>
  }

  async insert(type: TypeName, values: Iterable<readonly [string, Json]>, ttl = DEFAULT_TTL): Promise<Snapshot> {
    const ctx = { author: this.author, clock: this.clock }
    const list = checkedValues(values)
    return this.run({ flavour: 'ttl', type }, (t) => insertEntries(t as Table, list, ttl, ctx)) as Promise<Snapshot>
  }

  async remove(type: TypeName, keys: Iterable<string>, ttl = DEFAULT_TTL): Promise<Snapshot> {
    const ctx = { author: this.author, clock: this.clock }
    const list = [...keys]
    return this.run({ flavour: 'ttl', type }, (t) => removeKeys(t as Table, list, ttl, ctx)) as Promise<Snapshot>
  }

  /** Merges a remote table and returns the merged one: what the HTTP endpoint answers. */
  async merge(type: TypeName, remote: Table, source?: string): Promise<Snapshot> {
    return this.mergeInto({ flavour: 'ttl', type }, remote, source) as Promise<Snapshot>
  }

  /**
   * Merges a received table of either flavour. `source` names the link it came from (see ChangeEvent.sources),
   * so that what it changes is not sent back there. `chargeChecks` charges the sender for the signatures
   * the replica's admission verifies (see `Admission`).
   */
  async mergeInto(ref: TableRef, remote: ReadonlyMap<string, object>, source?: string, chargeChecks?: (checks: number) => void): Promise<Snapshot<AnyTable>> {
    const rules = FLAVOURS[ref.flavour]
    return this.mergeWith(ref, remote, (t, admitted) => rules.merge(t as never, admitted as never, this.clock), source, chargeChecks)
  }

  /**
   * Merges a received TTL table under the caller's rule instead of malla's order: `choose` sees, key by key, the
   * received entry and the local one as they are when the merge runs, and returns what the key then holds
   * (undefined or the local entry: unchanged). The shared-state-async edge uses it, whose TTLs are seconds.
   */
  async mergeChosen(type: TypeName, remote: Table, choose: (key: string, theirs: Entry, ours: Entry | undefined) => Entry | undefined, source?: string): Promise<Snapshot> {
    const merge = (t: WritableTable<AnyEntry>, admitted: ReadonlyMap<string, object>) => mergeChosenEntries(t as WritableTable<Entry>, admitted as ReadonlyMap<string, Entry>, choose)
    return this.mergeWith({ flavour: 'ttl', type }, remote, merge, source) as Promise<Snapshot>
  }

  /**
   * What every merge does around its rule: a TTL table first drops changed copies of this node's own writes,
   * then the admission keeps what may be merged, given the table as it is when the merge runs.
   */
  private mergeWith(
    ref: TableRef,
    remote: ReadonlyMap<string, object>,
    merge: (table: WritableTable<AnyEntry>, admitted: ReadonlyMap<string, object>) => Changes,
    source?: string,
    chargeChecks?: (checks: number) => void,
  ): Promise<Snapshot<AnyTable>> {
    const admit = this.admit
    return this.run(
      ref,
      (t) => {
        const kept = ref.flavour === 'ttl' ? this.withoutChangedOwnWrites(remote, t) : remote
        return merge(t, admit ? admit(ref, kept, t, chargeChecks) : kept)
      },
      true,
      false,
      source,
    )
  }

  /**
   * `remote` without the copies of this node's own writes (its author, the clock of the write it holds) whose
   * data changed on the way: a LibreMesh router re-serialises what it relays with json-c, which writes `{}` back
   * as `[]` and may cut integers to 32 bits. The author's copy is the write; such a copy never replaces it here,
   * whatever its TTL (protocol §3.2).
   */
  private withoutChangedOwnWrites(remote: ReadonlyMap<string, object>, table: ReadonlyMap<string, object>): ReadonlyMap<string, object> {
    let out: Map<string, object> | undefined
    for (const [key, entry] of remote) {
      const mine = table.get(key) as Entry | undefined
      const theirs = entry as Partial<Entry>
      if (mine === undefined || mine.author !== this.author || mine.clock === undefined || theirs.author !== mine.author || theirs.clock !== mine.clock || jsonEqual(theirs.data as Json, mine.data)) continue
      out ??= new Map(remote)
      out.delete(key)
    }
    return out ?? remote
  }

  async bleach(type: TypeName): Promise<Snapshot> {
    return this.run({ flavour: 'ttl', type }, (t) => bleach(t as WritableTable<Entry>, this.packing)) as Promise<Snapshot>
  }

  async getMultiWriter(type: TypeName): Promise<Snapshot<MultiWriterTable>> {
    return this.read({ flavour: 'multiwriter', type }) as Promise<Snapshot<MultiWriterTable>>
  }

  async insertMultiWriter(type: TypeName, values: Iterable<readonly [string, Json]>): Promise<Snapshot<MultiWriterTable>> {
    const ctx = { author: this.author, random: this.random, nowSeconds: () => this.now() / 1000 }
    const list = checkedValues(values)
    return this.run({ flavour: 'multiwriter', type }, (t) =>
      insertMultiWriter(t as MultiWriterTable, list, ctx),
    ) as Promise<Snapshot<MultiWriterTable>>
  }

  async mergeMultiWriter(type: TypeName, remote: MultiWriterTable, source?: string): Promise<Snapshot<MultiWriterTable>> {
    return this.mergeInto({ flavour: 'multiwriter', type }, remote, source) as Promise<Snapshot<MultiWriterTable>>
  }

  /** Reads an operation's table without touching it: runs through the same queue so it sees every earlier write. */
  read(ref: TableRef): Promise<Snapshot<AnyTable>> {
    return this.run(ref, () => ({ keys: [], touched: false, written: [], deleted: [] }), false)
  }

  /**
   * Re-reads a table if another writer changed it, emitting `change` for what differs.
   * The daemon calls this when it sees the file change, so hooks and sync react to CLI writes at once.
   */
  async refresh(ref: TableRef): Promise<void> {
    await this.read(ref)
  }

  private slot(ref: TableRef): Slot {
    const key = refKey(ref)
    let slot = this.slots.get(key)
    if (slot === undefined) {
      slot = { ref, table: new Map(), version: undefined, journalBytes: 0, baseBytes: 0, rewrite: false, pending: [], draining: false }
      this.slots.set(key, slot)
    }
    return slot
  }

  /**
   * Rewrites a table whole if it has journaled changes, so its file holds the current table in LibreMesh's
   * layout again. The daemon calls this when a table has been quiet for a moment, and at shutdown.
   */
  async compact(ref: TableRef): Promise<void> {
    await this.run(ref, () => ({ keys: [], touched: false, written: [], deleted: [] }), true, true)
  }

  private run(ref: TableRef, op: Op, write = true, full = false, source?: string): Promise<Snapshot<AnyTable>> {
    const slot = this.slot(ref)
    return new Promise((resolve, reject) => {
      slot.pending.push({ op, write, full, source, resolve, reject })
      if (!slot.draining) void this.drain(slot)
    })
  }

  private async drain(slot: Slot): Promise<void> {
    slot.draining = true
    try {
      while (slot.pending.length > 0) {
        const batch = slot.pending.splice(0)
        await this.commit(slot, batch)
      }
    } finally {
      slot.draining = false
      // A table that holds nothing, here or on disk, is not kept: reads of any number of names that do not
      // exist (anyone may ask for one) must not leave a slot each behind.
      if (slot.pending.length === 0 && slot.table.size === 0 && (slot.version === undefined || slot.version === ABSENT)) this.slots.delete(refKey(slot.ref))
    }
  }

  /**
   * Applies a batch under one lock and one save. Tables handed out in snapshots are never mutated: a write
   * batch works on a draft over the committed table, which replaces the slot's table only once saved. So a
   * failure at any point (an operation throwing, a value that will not serialise, a full disk) leaves
   * memory exactly as the disk is.
   */
  private async commit(slot: Slot, batch: Pending[]): Promise<void> {
    let release: (() => Promise<void>) | undefined
    // Keys announced by 'applied' in this commit: if it then fails, listeners hear they were taken back.
    const announced = new Set<string>()
    const writes = batch.filter((p) => p.write)
    try {
      // Announced before the lock and the check of the stored copy, run on the table as this process last
      // knew it: pushes and the feed need not wait for a lock file and a stat. Another process rarely writes
      // meanwhile; when it has, the batch runs again on the stored copy and that result is announced too.
      // Both are valid states of the CRDT (merges commute), and the later copy of a key wins everywhere.
      // (Not before the table's first load: this process knows nothing of it yet.)
      const known = slot.table
      const early = writes.length > 0 && slot.version !== undefined && (this.emitter.events.applied?.length ?? 0) > 0 ? applyBatch(known, batch) : undefined
      if (early?.draft && early.keys.size > 0) {
        early.keys.forEach((k) => announced.add(k))
        this.emit('applied', slot.ref, [...early.keys], 'local', early.draft, early.sources)
      }
      if (writes.length > 0) release = await disk(this.store.lock(slot.ref))
      const external = await this.reloadIfChanged(slot)
      const { draft, results, failed, keys, written, deleted, touched, everyEntry, sources } =
        early && slot.table === known ? early : writes.length > 0 ? applyBatch(slot.table, batch) : readBatch(batch)
      if (external.length > 0) this.emit('applied', slot.ref, external, 'external', slot.table)
      // The draft goes out as it is: the push to neighbours should not wait for a copy of the whole table.
      if (keys.size > 0 && draft && draft !== early?.draft) {
        keys.forEach((k) => announced.add(k))
        this.emit('applied', slot.ref, [...keys], 'local', draft, sources)
      }
      // A few changes stay a layer over the committed table; many are folded into a new one (see shouldFold).
      const work: HeldTable = draft === undefined || draft.unchanged ? slot.table : draft.shouldFold ? fold(slot.ref.flavour, draft, this.packing) : draft
      let text: string | undefined
      const compact = (slot.journalBytes > 0 || slot.rewrite) && batch.some((p) => p.full)
      if (touched && (slot.version === undefined || slot.version === ABSENT)) await this.makeRoom(slot.ref)
      if (touched || compact) {
        // A small change to a large table goes to the journal; the whole table is rewritten when the
        // journal grows past half the table (or 64 KiB), when asked to compact, or when most keys changed.
        const small = !everyEntry && written.size + deleted.size <= Math.max(64, work.size / 8)
        const journalRoom = !slot.rewrite && slot.journalBytes < Math.max(64 * 1024, slot.baseBytes / 2)
        if (this.store.keep) {
          // A store in memory keeps the table itself: nothing to write out.
          slot.version = await disk(this.store.keep(slot.ref, work))
          slot.journalBytes = 0
          slot.rewrite = false
        } else if (this.store.append && touched && small && journalRoom && !compact) {
          const set = new Map<string, object>()
          for (const k of written) if (!deleted.has(k)) set.set(k, work.get(k) as object)
          try {
            const appended = await disk(this.store.append(slot.ref, `{"set":${serializeTable(set)},"del":${JSON.stringify([...deleted])}}`))
            slot.version = appended.version
            slot.journalBytes = appended.journalBytes
          } catch (error) {
            // Whatever the journal now holds, the next save rewrites the table whole and drops it.
            slot.journalBytes = Number.MAX_SAFE_INTEGER
            throw error
          }
        } else if (this.store.saveTable) {
          // Written out piece by piece: the text of a large table is never held whole (see serializeTableChunks).
          const saved = await disk(this.store.saveTable(slot.ref, work))
          slot.version = saved.version
          slot.journalBytes = 0
          slot.rewrite = false
          slot.baseBytes = saved.bytes
        } else {
          text = serializeTable(work)
          slot.version = await disk(this.store.save(slot.ref, text))
          slot.journalBytes = 0
          slot.rewrite = false
          slot.baseBytes = text.length
        }
        slot.table = work
      }
      await release?.()
      release = undefined
      for (const p of batch) {
        const changes = results.get(p)
        if (changes === undefined) p.reject(failed.get(p))
        else p.resolve(snapshotOf(slot.table, changes.keys, text))
      }
      if (external.length > 0) this.emit('change', slot.ref, external, 'external', slot.table)
      if (keys.size > 0) this.emit('change', slot.ref, [...keys], 'local', slot.table, sources)
    } catch (error) {
      if (release) await release().catch(() => {})
      if (announced.size > 0) this.emit('reverted', slot.ref, [...announced], 'local', slot.table)
      // Not the disk, not the lock: a bug or a value that slipped past the edge's checks. Each write then
      // runs alone, so one bad operation never fails the others that happened to share its commit.
      if (!isMallaError(error) && writes.length > 1) {
        for (const p of batch) await this.commit(slot, [p])
        return
      }
      const wrapped = isMallaError(error) ? error : new MallaError('INTERNAL', `cannot write ${refKey(slot.ref)}: ${(error as Error).message}`, { cause: error })
      this.log.error('table operation failed', { table: refKey(slot.ref), error: wrapped.message })
      // Reads need neither the lock nor the save: they get the table as stored, which memory still is.
      for (const p of batch) {
        if (p.write) p.reject(wrapped)
        else p.resolve(snapshotOf(slot.table, [], undefined))
      }
    }
  }

  /** Throws TOO_LARGE when saving `ref`, a table the store does not hold yet, would pass the bound on tables. */
  private async makeRoom(ref: TableRef): Promise<void> {
    this.stored ??= new Set((await disk(this.store.list())).map(refKey))
    if (this.stored.has(refKey(ref))) return
    if (this.stored.size >= this.maxTables) {
      throw new MallaError('TOO_LARGE', `this node holds ${this.stored.size} tables, the most it takes: ${refKey(ref)} is not created`)
    }
    this.stored.add(refKey(ref))
  }

  /** Loads the stored copy when its version differs from ours; returns the keys that changed substantially. */
  private async reloadIfChanged(slot: Slot): Promise<string[]> {
    const version = await disk(this.store.version(slot.ref))
    if (version === slot.version) return []
    const stored = await disk(this.store.load(slot.ref))
    const { table: fresh, unreadable } = readStoredTable(slot.ref.flavour, stored)
    if (unreadable.length > 0) {
      // Keep every entry that is valid, and put only what is not where a person can read it. The table is
      // then rewritten whole (below), so the bad parts are not read again at every start.
      const reason = unreadable.map((u) => u.reason).slice(0, 3).join('; ') + (unreadable.length > 3 ? `; and ${unreadable.length - 3} more` : '')
      const aside = await disk(this.store.setAside(slot.ref, unreadable.map((u) => u.text).join('\n') + '\n', reason))
      this.log.error('unreadable parts of a table set aside; the rest is kept', { table: refKey(slot.ref), kept: fresh.size, unreadable: unreadable.length, to: aside, error: reason })
      slot.rewrite = true
    }
    slot.baseBytes = stored.text?.length ?? 0
    slot.journalBytes = (stored.journal ?? []).reduce((n, r) => n + r.length + 1, 0)
    for (const entry of fresh.values()) this.clock.observe((entry as { clock?: string }).clock)
    const changed: string[] = []
    const firstLoad = slot.version === undefined && slot.table.size === 0
    if (!firstLoad) {
      for (const [key, entry] of fresh) if (isSubstantial(slot.table.get(key), entry)) changed.push(key)
      for (const key of slot.table.keys()) if (!fresh.has(key)) changed.push(key)
    }
    // A large TTL table is held packed from the start (see core/packed-table.ts).
    const packing = this.packing
    slot.table = packing && slot.ref.flavour === 'ttl' && fresh.size >= packing.at ? packing.Table.pack(fresh as Table, packing.options) : fresh
    slot.version = stored.version
    if (slot.rewrite) queueMicrotask(() => void this.compact(slot.ref).catch(() => {}))
    return changed
  }

  private emit(name: keyof ReplicaEvents, ref: TableRef, keys: string[], origin: ChangeEvent['origin'], table: ReadonlyMap<string, object>, sources?: ReadonlyMap<string, string>): void {
    const event: ChangeEvent = sources !== undefined && sources.size > 0 ? { flavour: ref.flavour, type: ref.type, keys, origin, table, sources } : { flavour: ref.flavour, type: ref.type, keys, origin, table }
    // Each listener on its own: one that throws must not hide the change from the others.
    for (const listener of [...(this.emitter.events[name] ?? [])]) {
      try {
        listener(event)
      } catch (error) {
        this.log.error('change listener failed', { table: refKey(ref), error: (error as Error).message })
      }
    }
  }
}

/** A storage call whose failure is the store's: anything it throws that is not a MallaError is a STORAGE error. */
async function disk<T>(call: Promise<T>): Promise<T> {
  try {
    return await call
  } catch (e) {
    throw isMallaError(e) ? e : new MallaError('STORAGE', `storage failed: ${(e as Error).message}`, { cause: e })
  }
}

/** Values to write, refused up front (BAD_INPUT) if one could not be saved or loaded again. */
function checkedValues(values: Iterable<readonly [string, Json]>): Array<readonly [string, Json]> {
  const list = [...values]
  for (const [key, data] of list) checkData(key, data, 'insert')
  return list
}

/**
 * A snapshot of a table that is never mutated again. Its text is the one just saved, or is built when first
 * asked for; it lives only as long as the snapshot, so an idle router does not hold every table twice.
 */
function snapshotOf(table: HeldTable, changed: readonly string[], saved: string | undefined): Snapshot<AnyTable> {
  let text = saved
  return {
    table,
    changed,
    get text() {
      text ??= serializeTable(table)
      return text
    },
  }
}

/** A part of a stored table that could not be read: its text, kept aside, and why. */
interface Unreadable {
  readonly text: string
  readonly reason: string
}

/**
 * A stored table (base text plus journal records), keeping every valid entry and record: a bad entry, a bad
 * record or an unreadable base text loses only itself. What is left out is returned, to be kept aside.
 */
function readStoredTable(flavour: Flavour, stored: StoredTable): { table: AnyTable; unreadable: Unreadable[] } {
  const unreadable: Unreadable[] = []
  const lenient = (value: unknown, what: string): AnyTable => {
    const rejected: RejectedEntry[] = []
    const table = parseStoredTable(flavour, value, what, rejected) as AnyTable
    for (const r of rejected) unreadable.push({ text: `{${JSON.stringify(r.key)}:${safeStringify(r.value)}}`, reason: `${what}: entry ${JSON.stringify(r.key.slice(0, 80))}: ${r.reason}` })
    return table
  }
  let table: AnyTable = new Map()
  if (stored.text !== undefined && stored.text.trim() !== '') {
    try {
      table = lenient(parseJsonText(stored.text, 'stored table'), 'stored table')
    } catch (error) {
      unreadable.push({ text: stored.text, reason: (error as Error).message })
    }
  }
  for (const record of stored.journal ?? []) {
    try {
      const value = parseJsonText(record, 'journal record') as { set?: unknown; del?: unknown }
      if (value === null || typeof value !== 'object' || !Array.isArray(value.del)) throw new MallaError('BAD_INPUT', 'journal record must be {"set": {...}, "del": [...]}')
      for (const [key, entry] of lenient(value.set, 'journal record')) table.set(key, entry)
      for (const key of value.del) if (typeof key === 'string') table.delete(key)
    } catch (error) {
      unreadable.push({ text: record, reason: (error as Error).message })
    }
  }
  return { table, unreadable }
}

/**
 * The committed table a draft's changes make: with `packing`, a packed table for a large TTL table; a plain
 * Map otherwise. A packed table that shrank below half of the packing size becomes a Map again.
 */
function fold(flavour: Flavour, draft: DraftTable<AnyEntry>, packing: TablePacking | undefined): HeldTable {
  const base = draft.base
  const packed = packing !== undefined && base instanceof packing.Table
  if (packing === undefined || flavour !== 'ttl' || draft.size < (packed ? packing.at / 2 : packing.at)) return draft.materialize()
  if (packed && draft.changedCount === 0) return base
  return packing.Table.fold(base as ReadonlyMap<string, Entry>, draft.changes() as Map<string, Entry | undefined>, draft.movedKeys, packing.options)
}

/**
 * `bleachTable`, without reading any entry when the table is packed: as entry objects, a round over a
 * 100,000-entry table would hold all of them twice for a moment.
 */
function bleach(table: WritableTable<Entry>, packing: TablePacking | undefined): Changes {
  if (packing === undefined || !(table instanceof DraftTable) || !(table.base instanceof packing.Table)) return bleachTable(table)
  const draft = table as DraftTable<Entry>
  const base = draft.base as InstanceType<TablePacking['Table']>
  const current = draft.changedCount === 0 ? base : packing.Table.fold(base, draft.changes(), draft.movedKeys)
  const { table: next, dropped } = current.bleached()
  draft.rebase(next)
  return { keys: dropped, touched: current.size > 0, written: [], deleted: dropped, everyEntry: true }
}

/** JSON text of a value that failed validation: it may be too deep to serialise. */
function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null'
  } catch {
    return '"(not serialisable)"'
  }
}

interface BatchResult {
  readonly draft: DraftTable<AnyEntry> | undefined
  readonly results: Map<Pending, Changes>
  /** Operations that threw, with what they threw; the others were applied without them. */
  readonly failed: Map<Pending, unknown>
  readonly keys: Set<string>
  readonly written: Set<string>
  readonly everyEntry: boolean
  readonly deleted: Set<string>
  readonly touched: boolean
  /** Changed keys whose last change in the batch was a merge from a link: that link (ChangeEvent.sources). */
  readonly sources: Map<string, string>
}

/** Runs a batch on a draft over `table`: an operation that throws part-way is dropped and the others are replayed on a fresh draft. */
function applyBatch(table: HeldTable, batch: readonly Pending[]): BatchResult {
  const failed = new Map<Pending, unknown>()
  for (;;) {
    const draft = DraftTable.over(table)
    const results = new Map<Pending, Changes>()
    const thrower = batch.find((p) => {
      if (failed.has(p)) return false
      try {
        results.set(p, p.op(draft))
        return false
      } catch (error) {
        failed.set(p, error)
        return true
      }
    })
    if (thrower === undefined) return summarize(draft, results, failed)
  }
}

function readBatch(batch: readonly Pending[]): BatchResult {
  return summarize(undefined, new Map(batch.map((p) => [p, { keys: [], touched: false, written: [], deleted: [] }])), new Map())
}

function summarize(draft: DraftTable<AnyEntry> | undefined, results: Map<Pending, Changes>, failed: Map<Pending, unknown>): BatchResult {
  const keys = new Set<string>()
  const written = new Set<string>()
  const deleted = new Set<string>()
  const sources = new Map<string, string>()
  let touched = false
  let everyEntry = false
  // In batch order: a key changed by a later operation belongs to it, whether it came from a link or not.
  for (const [p, c] of results) {
    touched ||= c.touched
    everyEntry ||= c.everyEntry === true
    for (const k of c.keys) {
      keys.add(k)
      if (p.source !== undefined) sources.set(k, p.source)
      else sources.delete(k)
    }
    for (const k of c.written) written.add(k)
    for (const k of c.deleted) deleted.add(k)
  }
  return { draft, results, failed, keys, written, deleted, touched, everyEntry, sources }
}
