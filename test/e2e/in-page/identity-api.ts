/** The identity API for pages of the browser tests that join with a key: injected before the page loads. */
import { createIdentity } from '../../../src/identity/identity.js'

Object.assign(globalThis, { identityApi: { createIdentity } })
