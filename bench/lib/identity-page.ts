/**
 * Entry of the page bundle bench/identity.ts serves: the identity API and openpgp.js itself (the baseline),
 * timing both on the same key and the same offer-sized bytes, in the page.
 */
import * as openpgp from 'openpgp'
import { createIdentity } from '../../src/identity/identity.js'
import { timeIdentity } from './identity-timing.js'

Object.assign(globalThis, { runIdentityTimings: (reps: number) => timeIdentity(createIdentity, openpgp, reps) })
