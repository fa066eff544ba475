/**
 * `malla/identity`: a person's OpenPGP key (made here or by GnuPG, kept as ASCII armor) and detached
 * signatures GnuPG verifies, made and checked with Ed25519 directly. openpgp.js loads only when a whole key is
 * made, imported or exported; a bundler puts it in a chunk of its own.
 */
export { createIdentity, importIdentity, readPublicIdentity, type Identity, type PublicIdentity } from './identity.js'
export { loadOrCreateIdentity, MemoryKeyStore, type KeyStore } from './key-store.js'
export { signDetached, verifyDetached, MAX_SIGNATURE_BYTES, type SignatureCheck } from './pgp-signature.js'
export { parseEd25519Key, readPacket, type Ed25519PublicKey } from './pgp-packets.js'
