/**
 * What signed signaling (§18.2-18.4) needs of cryptography, in one module that `join` imports when a peer
 * joins: Ed25519, SHA-512 and SHA-1 and the OpenPGP packet code. A bundler makes a
 * chunk of it, so an app's first load does not carry them (the page can show itself while it joins).
 */
export { rememberingChecker, roomAdmission } from './room-admission.js'
export { checkRecord, keySigner, recordSigner, signerFingerprint } from './signed-records.js'
