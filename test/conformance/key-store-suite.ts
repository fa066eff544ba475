import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { KeyStore } from '../../src/identity/key-store.js'

/** What an adapter's test gives the suite: a fresh, empty store per test, and a second handle on the same storage. */
export interface KeyStoreFixture {
  readonly store: KeyStore
  /** The same storage opened again, as the next visit or the next process would. */
  readonly reopen: () => KeyStore
  readonly teardown: () => Promise<void>
}

/** An armored key's shape, long enough to cross any single-chunk path and with characters beyond ASCII in its name. */
const ARMOR = `-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n${'xVgEZ0Hf+BYJKwYBBAHaRw8BAQdA\n'.repeat(300)}=ñandú\n-----END PGP PRIVATE KEY BLOCK-----\n`

/** The key-store contract (src/identity/key-store.ts): every adapter, in Node or in a page, passes this. */
export function keyStoreSuite(name: string, setup: () => Promise<KeyStoreFixture>): void {
  const withStore = (fn: (f: KeyStoreFixture) => Promise<void>) => async () => {
    const f = await setup()
    try {
      await fn(f)
    } finally {
      await f.teardown()
    }
  }
  describe(`KeyStore conformance: ${name}`, () => {
    it('holds nothing at first', withStore(async ({ store }) => assert.equal(await store.load(), undefined)))

    it('gives back exactly what was saved, also when opened again', withStore(async ({ store, reopen }) => {
      await store.save(ARMOR)
      assert.equal(await store.load(), ARMOR)
      assert.equal(await reopen().load(), ARMOR)
    }))

    it('a save replaces the key kept', withStore(async ({ store, reopen }) => {
      await store.save(ARMOR)
      await store.save('second')
      assert.equal(await store.load(), 'second')
      assert.equal(await reopen().load(), 'second')
    }))

    it('clear forgets the key, and clearing nothing is fine', withStore(async ({ store, reopen }) => {
      await store.clear()
      await store.save(ARMOR)
      await store.clear()
      assert.equal(await store.load(), undefined)
      assert.equal(await reopen().load(), undefined)
    }))
  })
}
