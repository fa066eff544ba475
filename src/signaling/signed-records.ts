import canonicalizeModule from 'canonicalize'
import { sha256 } from '@noble/hashes/sha2'
import { hexToBytes } from '@noble/hashes/utils'
import { fromBase64Url, toBase64Url } from '../core/base64url.js'
import { badInput } from '../core/errors.js'
import type { Json } from '../core/types.js'
import type { Identity } from '../identity/identity.js'
import { be32, ed25519KeyBody, parseEd25519Key, u32, type Ed25519PublicKey } from '../identity/pgp-packets.js'
import { verifyDetached } from '../identity/pgp-signature.js'
import { isKeyBound } from './signal-records.js'

const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined

/**
 * Signed signaling records (docs/protocol.md §18.2). A signing peer's id is bound to its key: it is derived
 * from the key's fingerprint and a nonce of the session (`k` and 25 base32 characters of a SHA-256), so each
 * tab or process has its own id, and nobody without the key can write a record that a reader takes as that
 * peer's. Every record of such a peer carries `pgp: {k, n, sig}`: the Ed25519 key (its creation time and
 * point, from which the OpenPGP key packet and fingerprint follow), the nonce, and an OpenPGP detached
 * signature (GnuPG verifies it) over the record's type, key and data. Readers check all three; a record whose
 * key names a key-bound id and that does not check is not that peer's, whatever its `author` says.
 */

const CONTEXT = 'malla-signal/1'
const ID_CONTEXT = new TextEncoder().encode('malla-peer/1')
const NONCE_BYTES = 12
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'

/** What signs a session's records: its identity and the session's nonce, and the peer id they make. */
export interface RecordSigner {
  readonly peerId: string
  readonly fingerprint: string
  /** Adds the signature to `data`, the value of entry `key` of table `type`. */
  sign(type: string, key: string, data: { readonly [k: string]: Json }): Json
}

/** A signer for a new session of `identity`: a fresh nonce, so a new peer id. */
export function recordSigner(identity: Identity, nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES))): RecordSigner {
  const peerId = keyBoundId(identity.key, nonce)
  return { peerId, fingerprint: identity.fingerprint, sign: signingWith(identity, { ...keyProof(identity), n: toBase64Url(nonce) }) }
}

/** What a reader learns of a record's signature. */
export type RecordCheck =
  | { readonly signed: false }
  | { readonly signed: true; readonly fingerprint: string; readonly peer: string }

/** `checkRecord`'s shape, for the modules that are handed it rather than importing the crypto behind it. */
export type RecordChecker = (type: string, key: string, peer: string, data: unknown) => RecordCheck

/**
 * Checks the signature of `data`, the value of entry `key` of table `type`, written by `peer` (the peer its
 * key names). Unsigned data is `{ signed: false }` unless `peer` is key-bound; a signed record must be valid
 * and its key must make `peer`. Throws `BAD_INPUT` otherwise: the caller skips the record.
 */
export function checkRecord(type: string, key: string, peer: string, data: unknown): RecordCheck {
  const pgp = proofOf(data)
  if (pgp === undefined) {
    if (isKeyBound(peer)) throw badInput(`record ${key} of a key-bound peer is not signed`)
    return { signed: false }
  }
  if (typeof pgp.n !== 'string' || pgp.n.length > 32) throw badInput(`record ${key}: malformed signature fields`)
  const signer = proofKey(pgp, key)
  const nonce = fromBase64Url(pgp.n)
  if (nonce.byteLength !== NONCE_BYTES) throw badInput(`record ${key}: the nonce is not ${NONCE_BYTES} bytes`)
  if (keyBoundId(signer, nonce) !== peer) throw badInput(`record ${key}: its key does not make the peer id ${peer}`)
  verifyProof(type, key, data as Record<string, Json>, pgp, signer)
  return { signed: true, fingerprint: signer.fingerprint, peer }
}

/**
 * A signer for records that speak for the person rather than one session (the key directory, messages that
 * wait): `pgp: {k, sig}`, no nonce, checked by `checkKeyRecord` against the fingerprint the entry's key names.
 */
export function keySigner(identity: Identity): RecordSigner['sign'] {
  return signingWith(identity, keyProof(identity))
}

/** `k`: the key's creation time and point, from which a reader rebuilds its key packet and fingerprint. */
function keyProof(identity: Identity): { k: string } {
  return { k: toBase64Url(new Uint8Array([...be32(keyCreated(identity.key)), ...identity.key.point])) }
}

/** Signs a record's data with `proof` in it: the signature covers the proof too, all but `sig` itself. */
function signingWith(identity: Identity, proof: { readonly [k: string]: string }): RecordSigner['sign'] {
  return (type, key, data) => {
    const unsigned = { ...data, pgp: proof }
    return { ...data, pgp: { ...proof, sig: toBase64Url(identity.sign(signedBytes(type, key, unsigned))) } }
  }
}

/**
 * Checks a record `keySigner` signed: its signature must hold and its key must have one of `fingerprints`
 * (40 uppercase hex digits, as the entry's key names them). Returns the signer's key; throws `BAD_INPUT`.
 */
export function checkKeyRecord(type: string, key: string, fingerprints: readonly string[], data: unknown): Ed25519PublicKey {
  const pgp = proofOf(data)
  if (pgp === undefined) throw badInput(`record ${key} is not signed`)
  if (pgp.n !== undefined) throw badInput(`record ${key}: a session's signature where the person's is needed`)
  const signer = proofKey(pgp, key)
  if (!fingerprints.includes(signer.fingerprint)) throw badInput(`record ${key}: signed by ${signer.fingerprint}, not by the key its key names`)
  verifyProof(type, key, data as Record<string, Json>, pgp, signer)
  return signer
}

/** Fingerprints by `pgp.k`, the last 1,024: a table's quotas read every record's at each merge. */
const fingerprints = new Map<string, string>()

/** The fingerprint of the key named in a signed record's `pgp.k`, without checking the signature (a replica's admission did). */
export function signerFingerprint(data: unknown): string | undefined {
  try {
    const pgp = proofOf(data)
    if (!pgp || typeof pgp.k !== 'string') return undefined
    const known = fingerprints.get(pgp.k)
    if (known !== undefined) return known
    const fingerprint = proofKey(pgp, '').fingerprint
    if (fingerprints.size >= 1024) fingerprints.delete(fingerprints.keys().next().value as string)
    fingerprints.set(pgp.k, fingerprint)
    return fingerprint
  } catch {
    return undefined
  }
}

type Proof = { readonly k?: unknown; readonly n?: unknown; readonly sig?: unknown }

function proofOf(data: unknown): Proof | undefined {
  const pgp = data !== null && typeof data === 'object' && !Array.isArray(data) ? (data as { pgp?: unknown }).pgp : undefined
  if (pgp === undefined) return undefined
  if (pgp === null || typeof pgp !== 'object' || Array.isArray(pgp)) throw badInput('pgp is not an object')
  return pgp as Proof
}

/** The Ed25519 key a proof names (`k`: creation time and point, 36 bytes). */
function proofKey(pgp: Proof, key: string): Ed25519PublicKey {
  if (typeof pgp.k !== 'string' || typeof pgp.sig !== 'string' || pgp.k.length > 64 || pgp.sig.length > 400) throw badInput(`record ${key}: malformed signature fields`)
  const keyBytes = fromBase64Url(pgp.k)
  if (keyBytes.byteLength !== 36) throw badInput(`record ${key}: the key is not 36 bytes`)
  return parseEd25519Key(ed25519KeyBody(keyBytes.subarray(4), u32(keyBytes, 0)))
}

function verifyProof(type: string, key: string, data: Record<string, Json>, pgp: Proof, signer: Ed25519PublicKey): void {
  const { sig, ...proof } = pgp as Record<string, Json>
  const check = verifyDetached(signedBytes(type, key, { ...data, pgp: proof }), fromBase64Url(sig as string), signer)
  if (!check.valid) throw badInput(`record ${key}: ${check.why}`)
}

/** The id a session of `key` with `nonce` goes by: `k` and 25 base32 characters of SHA-256(context, fingerprint, nonce). */
export function keyBoundId(key: Ed25519PublicKey, nonce: Uint8Array): string {
  const digest = sha256(new Uint8Array([...ID_CONTEXT, ...hexToBytes(key.fingerprint), ...nonce]))
  let bits = 0
  let value = 0
  let out = 'k'
  for (const byte of digest) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5 && out.length < 26) {
      out += BASE32[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
    value &= (1 << bits) - 1
  }
  return out
}

/** What a record's signature covers: the context, the table, the entry's key and its data without `pgp.sig`, canonical (RFC 8785). */
function signedBytes(type: string, key: string, data: Json): Uint8Array {
  return new TextEncoder().encode(canonicalize([CONTEXT, type, key, data]) as string)
}

/** The creation time in a key packet body (bytes 1-4). */
function keyCreated(key: Ed25519PublicKey): number {
  return u32(key.packetBody, 1)
}
