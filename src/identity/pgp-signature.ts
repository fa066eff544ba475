import * as ed25519 from '@noble/ed25519'
import { sha256 } from '@noble/hashes/sha2'
// Its own module specifier: the web build gives SHA-512 a module instance of its own (scripts/build-web.ts).
import { sha512 } from '@noble/hashes/sha512'
import { bytesToHex, concatBytes as concat, hexToBytes } from '@noble/hashes/utils'
import { MallaError } from '../core/errors.js'
import { ALGO_EDDSA_LEGACY, be32, equal, mpi, packet, readMpi, readPacket, TAG, u32, type Ed25519PublicKey } from './pgp-packets.js'

/**
 * OpenPGP detached signatures over bytes (signature type 0x00), made and checked with Ed25519 directly
 * (@noble/ed25519, 5 KB, with @noble/hashes' SHA-512): a v4 signature packet that GnuPG verifies (`gpg --verify sig data`) against the signer's
 * OpenPGP key, at well under a millisecond to make in a page where openpgp.js would take ~27 ms. The reader
 * also takes GnuPG's and openpgp.js's own detached signatures by Ed25519 keys (SHA-256 or SHA-512).
 */

// @noble/ed25519 takes its SHA-512 from the app: the pure-JS one, since pages on plain http:// have no WebCrypto.
ed25519.hashes.sha512 = (message) => sha512(message) as Uint8Array<ArrayBuffer>

const SIG_BINARY = 0x00
const HASH = { 8: sha256, 10: sha512 } as const
const SUB = { created: 2, expires: 3, issuerKeyId: 16, issuerFingerprint: 33 } as const
/** A signature packet longer than this is not one of ours, nor any sane Ed25519 signature. */
export const MAX_SIGNATURE_BYTES = 1024

/** What a checked signature says. */
export type SignatureCheck = { readonly valid: true; readonly created: number } | { readonly valid: false; readonly why: string }

/** A detached OpenPGP signature of `data` by `key` (whose Ed25519 secret is `seed`), made at `created` (Unix seconds). */
export function signDetached(data: Uint8Array, key: Ed25519PublicKey, seed: Uint8Array, created = Math.floor(Date.now() / 1000)): Uint8Array {
  if (seed.byteLength !== 32) throw new MallaError('BAD_INPUT', 'an Ed25519 secret seed is 32 bytes')
  const fingerprint = hexToBytes(key.fingerprint)
  const hashed = concat(subpacket(SUB.created, be32(created)), subpacket(SUB.issuerFingerprint, concat(Uint8Array.of(4), fingerprint)))
  const head = concat(Uint8Array.of(4, SIG_BINARY, ALGO_EDDSA_LEGACY, 8, hashed.byteLength >> 8, hashed.byteLength & 0xff), hashed)
  const digest = sha256(concat(data, head, trailer(head.byteLength)))
  const sig = ed25519.sign(digest, seed)
  // The issuer's key id, unhashed, for readers older than the fingerprint subpacket.
  const unhashed = subpacket(SUB.issuerKeyId, fingerprint.subarray(12))
  return packet(TAG.signature, concat(head, Uint8Array.of(unhashed.byteLength >> 8, unhashed.byteLength & 0xff), unhashed, digest.subarray(0, 2), mpi(sig.subarray(0, 32)), mpi(sig.subarray(32))))
}

/**
 * Checks a detached signature of `data` by `key`, at `now` (Unix seconds, for an expiry). Never throws: a
 * stranger's bytes that are not a signature by this key, however malformed, are `{ valid: false }`.
 */
export function verifyDetached(data: Uint8Array, signature: Uint8Array, key: Ed25519PublicKey, now = Math.floor(Date.now() / 1000)): SignatureCheck {
  try {
    if (signature.byteLength > MAX_SIGNATURE_BYTES) return invalid('signature too long')
    const { tag, body } = readPacket(signature)
    if (tag !== TAG.signature) return invalid('not a signature packet')
    const [version, type, algo, hashAlgo] = body
    if (version !== 4) return invalid(`signature version ${version}`)
    if (type !== SIG_BINARY) return invalid(`signature type ${type}, not a signature of bytes`)
    if (algo !== ALGO_EDDSA_LEGACY) return invalid(`signature algorithm ${algo}, not Ed25519`)
    const hash = HASH[hashAlgo as keyof typeof HASH]
    if (!hash) return invalid(`hash algorithm ${hashAlgo}`)
    const hashedEnd = 6 + (((body[4] ?? 0) << 8) | (body[5] ?? 0))
    const unhashedEnd = hashedEnd + 2 + (((body[hashedEnd] ?? 0) << 8) | (body[hashedEnd + 1] ?? 0))
    if (unhashedEnd + 2 > body.byteLength) return invalid('signature cut short')
    const facts = readHashed(body.subarray(6, hashedEnd))
    if (typeof facts === 'string') return invalid(facts)
    if (facts.issuer !== undefined && facts.issuer !== key.fingerprint) return invalid('signed by another key')
    const head = body.subarray(0, hashedEnd)
    const digest = hash(concat(data, head, trailer(head.byteLength)))
    if (!equal(digest.subarray(0, 2), body.subarray(unhashedEnd, unhashedEnd + 2))) return invalid('digest does not match')
    const r = readMpi(body, unhashedEnd + 2)
    const s = readMpi(body, r.next)
    if (s.next !== body.byteLength || r.value.byteLength > 32 || s.value.byteLength > 32) return invalid('malformed signature values')
    const sig = concat(pad32(r.value), pad32(s.value))
    if (!ed25519.verify(sig, digest, key.point, { zip215: false })) return invalid('bad signature')
    if (facts.expires > 0 && now >= facts.created + facts.expires) return invalid('signature expired')
    return { valid: true, created: facts.created }
  } catch (e) {
    return invalid(e instanceof Error ? e.message : 'malformed signature')
  }
}

const invalid = (why: string): SignatureCheck => ({ valid: false, why })

/** The hashed subpackets malla reads; an unknown critical one makes the signature unusable (RFC 4880 5.2.3.1). */
function readHashed(area: Uint8Array): { created: number; expires: number; issuer?: string } | string {
  let created: number | undefined
  let expires = 0
  let issuer: string | undefined
  for (let at = 0; at < area.byteLength; ) {
    const l0 = area[at] as number
    let length: number
    if (l0 < 192) [length, at] = [l0, at + 1]
    else if (l0 < 255) [length, at] = [((l0 - 192) << 8) + (area[at + 1] ?? 0) + 192, at + 2]
    else [length, at] = [u32(area, at + 1), at + 5]
    if (length < 1 || at + length > area.byteLength) return 'malformed subpacket'
    const type = (area[at] as number) & 0x7f
    const critical = ((area[at] as number) & 0x80) !== 0
    const value = area.subarray(at + 1, at + length)
    at += length
    if (type === SUB.created && value.byteLength === 4) created = u32(value, 0)
    else if (type === SUB.expires && value.byteLength === 4) expires = u32(value, 0)
    else if (type === SUB.issuerFingerprint && value.byteLength === 21 && value[0] === 4) issuer = bytesToHex(value.subarray(1)).toUpperCase()
    else if (critical && type !== SUB.issuerKeyId) return `unknown critical subpacket ${type}`
  }
  if (created === undefined) return 'no creation time'
  return issuer === undefined ? { created, expires } : { created, expires, issuer }
}

function subpacket(type: number, value: Uint8Array): Uint8Array {
  return concat(Uint8Array.of(value.byteLength + 1, type), value)
}

/** The v4 trailer hashed after the signed part: version, 0xff, and that part's length. */
function trailer(length: number): Uint8Array {
  return concat(Uint8Array.of(4, 0xff), be32(length))
}

function pad32(value: Uint8Array): Uint8Array {
  const out = new Uint8Array(32)
  out.set(value, 32 - value.byteLength)
  return out
}
