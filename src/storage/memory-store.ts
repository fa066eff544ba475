import { serializeTable } from '../core/schema.js'
import type { StoredTable, TableRef, TableStore } from './table-store.js'
import { refKey } from './table-store.js'
import { KeyedMutex } from './mutex.js'

/** Keeps tables in memory: for browsers without IndexedDB, tests, and nodes that need no persistence. */
export class MemoryStore implements TableStore {
  /** Each table as text (saved) or as the map a replica handed over (kept), written out only when loaded. */
  private readonly tables = new Map<string, { ref: TableRef; text?: string; table?: ReadonlyMap<string, object>; version: number }>()
  /** What was set aside, by name: kept for a person to read, never loaded. */
  readonly asides = new Map<string, string>()
  private readonly mutex = new KeyedMutex()
  private nextVersion = 1

  async list(): Promise<TableRef[]> {
    return [...this.tables.values()].map((t) => t.ref)
  }

  async load(ref: TableRef): Promise<StoredTable> {
    const t = this.tables.get(refKey(ref))
    if (t && t.text === undefined && t.table) t.text = serializeTable(t.table)
    return { text: t?.text, version: t ? String(t.version) : 'absent' }
  }

  async save(ref: TableRef, text: string): Promise<string> {
    const version = this.nextVersion++
    this.tables.set(refKey(ref), { ref: { flavour: ref.flavour, type: ref.type }, text, version })
    return String(version)
  }

  async keep(ref: TableRef, table: ReadonlyMap<string, object>): Promise<string> {
    const version = this.nextVersion++
    this.tables.set(refKey(ref), { ref: { flavour: ref.flavour, type: ref.type }, table, version })
    return String(version)
  }

  async version(ref: TableRef): Promise<string> {
    const t = this.tables.get(refKey(ref))
    return t ? String(t.version) : 'absent'
  }

  async lock(ref: TableRef): Promise<() => Promise<void>> {
    const release = await this.mutex.acquire(refKey(ref))
    return async () => release()
  }

  async setAside(ref: TableRef, text: string, reason: string): Promise<string> {
    const existing = [...this.asides].find(([name, kept]) => name.startsWith(`${refKey(ref)}.unreadable-`) && kept.endsWith(`\n${text}`))
    if (existing) return existing[0]
    const name = `${refKey(ref)}.unreadable-${this.asides.size + 1}`
    this.asides.set(name, `${reason}\n${text}`)
    return name
  }
}
