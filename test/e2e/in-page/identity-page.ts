/**
 * Entry of the in-page identity bundle: the key-store conformance suite (test/conformance/key-store-suite.ts,
 * unchanged) over IndexedDB, and the identity API for the test to drive, as an app on the page would use it.
 */
import { IdbKeyStore } from '../../../src/browser/identity/idb-key-store.js'
import { createIdentity, importIdentity, readPublicIdentity } from '../../../src/identity/identity.js'
import { loadOrCreateIdentity } from '../../../src/identity/key-store.js'
import { keyStoreSuite } from '../../conformance/key-store-suite.js'
import { runRegistered } from './node-test.js'

let n = 0
keyStoreSuite('IdbKeyStore (Chromium)', async () => {
  const name = `suite-${n++}`
  const store = new IdbKeyStore(name)
  return { store, reopen: () => new IdbKeyStore(name), teardown: () => store.clear() }
})
Object.assign(globalThis, { runSuite: runRegistered, identity: { createIdentity, importIdentity, readPublicIdentity, loadOrCreateIdentity, IdbKeyStore } })
