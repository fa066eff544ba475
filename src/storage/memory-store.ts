import type { StoredTable, TableRef, TableStore } from './table-store.js'
import { refKey } from './table-store.js'
import { KeyedMutex } from './mutex.js'

/** Keeps tables in memory: for browsers without IndexedDB, tests, and nodes that need no persistence. */
export class MemoryStore implements TableStore {
  private readonly tables = new Map<string, { ref: TableRef; text: string; version: number }>()
  private readonly quarantined = new Map<string, string>()
  private readonly mutex = new KeyedMutex()
  private nextVersion = 1

  async list(): Promise<TableRef[]> {
    return [...this.tables.values()].map((t) => t.ref)
  }

  async load(ref: TableRef): Promise<StoredTable> {
    const t = this.tables.get(refKey(ref))
    return { text: t?.text, version: t ? String(t.version) : 'absent' }
  }

  async save(ref: TableRef, text: string): Promise<string> {
    const version = this.nextVersion++
    this.tables.set(refKey(ref), { ref: { flavour: ref.flavour, type: ref.type }, text, version })
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

  async quarantine(ref: TableRef, reason: string): Promise<string> {
    const key = refKey(ref)
    const name = `${key}.corrupt-${Date.now()}`
    this.quarantined.set(name, `${reason}\n${this.tables.get(key)?.text ?? ''}`)
    this.tables.delete(key)
    return name
  }
}
