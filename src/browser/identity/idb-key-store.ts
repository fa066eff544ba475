import { createStore, del, get, set, type UseStore } from 'idb-keyval'
import { MallaError } from '../../core/errors.js'
import type { KeyStore } from '../../identity/key-store.js'

/**
 * A page's secret key in IndexedDB (database `malla-identity`, one entry per `name`), so the person is the same
 * after a reload, a closed tab or a restarted phone. IndexedDB works on plain http:// origins too, and keeps
 * the key to this origin: the router's address the page was opened from.
 */
export class IdbKeyStore implements KeyStore {
  private readonly store: UseStore

  constructor(private readonly name = 'identity') {
    this.store = createStore('malla-identity', 'keys')
  }

  async load(): Promise<string | undefined> {
    const value: unknown = await get(this.name, this.store).catch((e) => Promise.reject(storageError('cannot read the key from IndexedDB', e)))
    if (value === undefined) return undefined
    // Whatever else may have written there (another app on this origin) is not a key of ours.
    if (typeof value !== 'string') throw new MallaError('STORAGE', 'IndexedDB holds something other than a key under malla-identity')
    return value
  }

  async save(armoredSecret: string): Promise<void> {
    await set(this.name, armoredSecret, this.store).catch((e) => Promise.reject(storageError('cannot save the key in IndexedDB', e)))
  }

  async clear(): Promise<void> {
    await del(this.name, this.store).catch((e) => Promise.reject(storageError('cannot remove the key from IndexedDB', e)))
  }
}

function storageError(what: string, e: unknown): MallaError {
  return new MallaError('STORAGE', `${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e })
}
