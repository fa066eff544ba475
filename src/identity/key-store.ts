import type { Identity } from './identity.js'
import { createIdentity, importIdentity } from './identity.js'

/**
 * Where a person's secret key is kept between visits: IndexedDB in a page (`IdbKeyStore`), a file of mode
 * 0600 in Node (`FileKeyStore`). It holds the ASCII-armored secret key and nothing else, so that what is kept
 * is exactly what `gpg --import` takes. Every adapter passes `test/conformance/key-store-suite.ts`.
 */
export interface KeyStore {
  /** The armored secret key saved last, or undefined when none was. */
  load(): Promise<string | undefined>
  /** Durably replaces the key kept. */
  save(armoredSecret: string): Promise<void>
  /** Forgets the key (a person who leaves, or imports another). */
  clear(): Promise<void>
}

/** A store that forgets at exit: for tests, and for apps that want a new identity each visit. */
export class MemoryKeyStore implements KeyStore {
  private armored: string | undefined
  async load(): Promise<string | undefined> {
    return this.armored
  }
  async save(armoredSecret: string): Promise<void> {
    this.armored = armoredSecret
  }
  async clear(): Promise<void> {
    this.armored = undefined
  }
}

/**
 * The identity kept in `store`, or a new one for `name`, saved there before it is returned (a page that closes
 * right after still has it next time). A kept key that no longer imports is an error, never silently replaced:
 * it is someone's identity.
 */
export async function loadOrCreateIdentity(store: KeyStore, name: string): Promise<{ identity: Identity; created: boolean }> {
  const kept = await store.load()
  if (kept !== undefined) return { identity: await importIdentity(kept), created: false }
  const identity = await createIdentity(name)
  await store.save(identity.exportSecret())
  return { identity, created: true }
}
