/**
 * What bench/signaling's pages of mode (e) use to join with a key: `createIdentity`, injected as a classic
 * script before the page loads (the router's /malla.js has no OpenPGP in it).
 */
import { createIdentity } from '../../src/identity/identity.js'

Object.assign(globalThis, { identityApi: { createIdentity } })
