import { sha1 } from '@noble/hashes/legacy'
import { bytesToHex, concatBytes as concat } from '@noble/hashes/utils'
import { badInput } from '../core/errors.js'

/**
 * The few OpenPGP (RFC 4880, RFC 9580) packet shapes malla reads and writes without openpgp.js: the packet
 * framing, MPIs, and a v4 Ed25519 public key packet (the "legacy" EdDSA of every GnuPG 2.2 and openpgp.js 5
 * key). They let the connect path check who signed an offer with nothing but @noble/curves: openpgp.js is
 * 115 KB gzip and 10-30 ms a signature in a page without WebCrypto, so it is loaded only to make, import or
 * export whole keys. Everything here parses a stranger's bytes: it throws `BAD_INPUT`, never anything else.
 */

/** Packet tags used here. */
export const TAG = { signature: 2, publicKey: 6 } as const
/** Public-key algorithm 22: EdDSA (legacy), the only one malla signs and verifies with. */
export const ALGO_EDDSA_LEGACY = 22
/** 1.3.6.1.4.1.11591.15.1, the curve Ed25519 in OpenPGP's OID encoding. */
const OID_ED25519 = Uint8Array.of(0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01)

/** A packet's header: the new format, tag `tag`, the body's length in one, two or five octets. */
export function packet(tag: number, body: Uint8Array): Uint8Array {
  const n = body.byteLength
  const head =
    n < 192 ? [0xc0 | tag, n]
    : n < 8384 ? [0xc0 | tag, ((n - 192) >> 8) + 192, (n - 192) & 0xff]
    : [0xc0 | tag, 0xff, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]
  return concat(Uint8Array.from(head), body)
}

/** The one packet in `bytes` (nothing may follow it): its tag and body. Old- and new-format headers; no partial lengths. */
export function readPacket(bytes: Uint8Array): { tag: number; body: Uint8Array } {
  const { tag, body, next } = firstPacket(bytes)
  if (next !== bytes.byteLength) throw badInput(`OpenPGP packet of ${body.byteLength} bytes in ${bytes.byteLength - (next - body.byteLength)}`)
  return { tag, body }
}

/** The first packet in `bytes`, and where the next one starts. */
export function firstPacket(bytes: Uint8Array): { tag: number; body: Uint8Array; next: number } {
  const first = bytes[0]
  if (first === undefined || (first & 0x80) === 0) throw badInput('not an OpenPGP packet')
  let tag: number
  let length: number
  let at: number
  if (first & 0x40) {
    tag = first & 0x3f
    const l0 = bytes[1] ?? -1
    if (l0 < 0) throw badInput('OpenPGP packet cut short')
    if (l0 < 192) [length, at] = [l0, 2]
    else if (l0 < 224) [length, at] = [((l0 - 192) << 8) + (bytes[2] ?? 0) + 192, 3]
    else if (l0 === 255) [length, at] = [u32(bytes, 2), 6]
    else throw badInput('OpenPGP partial body lengths are not taken here')
  } else {
    tag = (first >> 2) & 0x0f
    const type = first & 3
    if (type === 3) throw badInput('OpenPGP indeterminate lengths are not taken here')
    const size = 1 << type
    length = 0
    for (let i = 0; i < size; i++) length = length * 256 + (bytes[1 + i] ?? 0)
    at = 1 + size
  }
  if (at + length > bytes.byteLength) throw badInput(`OpenPGP packet of ${length} bytes in ${bytes.byteLength - at}`)
  return { tag, body: bytes.subarray(at, at + length), next: at + length }
}

/** A multiprecision integer: its bit count, then its bytes without leading zeros. */
export function mpi(value: Uint8Array): Uint8Array {
  let start = 0
  while (start < value.byteLength && value[start] === 0) start++
  const bytes = value.subarray(start)
  const bits = bytes.byteLength === 0 ? 0 : (bytes.byteLength - 1) * 8 + (32 - Math.clz32(bytes[0] as number))
  return concat(Uint8Array.of(bits >> 8, bits & 0xff), bytes)
}

/** Reads an MPI at `at`: its bytes and where the next field starts. Only the canonical encoding is taken. */
export function readMpi(bytes: Uint8Array, at: number): { value: Uint8Array; next: number } {
  if (at + 2 > bytes.byteLength) throw badInput('OpenPGP MPI cut short')
  const bits = ((bytes[at] as number) << 8) | (bytes[at + 1] as number)
  const end = at + 2 + Math.ceil(bits / 8)
  if (end > bytes.byteLength) throw badInput('OpenPGP MPI cut short')
  const value = bytes.subarray(at + 2, end)
  // One encoding per number: a bit count that is not the value's own would make one signature many.
  const first = value[0]
  if (first !== undefined && (first === 0 || 32 - Math.clz32(first) !== bits - (value.byteLength - 1) * 8)) throw badInput('OpenPGP MPI with a wrong bit count')
  return { value, next: end }
}

/** An Ed25519 public key as OpenPGP holds it: a v4 key packet, and what is derived from it. */
export interface Ed25519PublicKey {
  /** The key packet's body (what the fingerprint hashes). */
  readonly packetBody: Uint8Array
  /** The raw 32-byte Ed25519 public key. */
  readonly point: Uint8Array
  /** The v4 fingerprint: 40 uppercase hex digits, as GnuPG prints it. */
  readonly fingerprint: string
  /** Its last 16 hex digits: the key id. */
  readonly keyId: string
}

/** The body of a v4 EdDSA public key packet for `point`, created at `created` (Unix seconds). */
export function ed25519KeyBody(point: Uint8Array, created: number): Uint8Array {
  if (point.byteLength !== 32) throw badInput('an Ed25519 public key is 32 bytes')
  return concat(Uint8Array.of(4), be32(created), Uint8Array.of(ALGO_EDDSA_LEGACY, OID_ED25519.byteLength), OID_ED25519, mpi(concat(Uint8Array.of(0x40), point)))
}

/** Reads a v4 public key packet body; throws `BAD_INPUT` unless it is an Ed25519 (legacy EdDSA) key. */
export function parseEd25519Key(body: Uint8Array): Ed25519PublicKey {
  if (body[0] !== 4) throw badInput(`OpenPGP key version ${body[0]}: malla reads version 4 keys`)
  if (body[5] !== ALGO_EDDSA_LEGACY) throw badInput(`OpenPGP key algorithm ${body[5]}: malla needs an Ed25519 key (gpg --quick-gen-key NAME future-default)`)
  const oidLength = body[6] ?? 0
  const oid = body.subarray(7, 7 + oidLength)
  if (!equal(oid, OID_ED25519)) throw badInput('OpenPGP EdDSA key on a curve other than Ed25519')
  const { value, next } = readMpi(body, 7 + oidLength)
  if (next !== body.byteLength) throw badInput('OpenPGP key packet has trailing bytes')
  if (value.byteLength !== 33 || value[0] !== 0x40) throw badInput('OpenPGP Ed25519 point is not in native (0x40) form')
  const fingerprint = bytesToHex(sha1(concat(Uint8Array.of(0x99, body.byteLength >> 8, body.byteLength & 0xff), body))).toUpperCase()
  return { packetBody: body.slice(), point: value.slice(1), fingerprint, keyId: fingerprint.slice(-16) }
}

export function be32(n: number): Uint8Array {
  return Uint8Array.of((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff)
}

export function u32(bytes: Uint8Array, at: number): number {
  if (at + 4 > bytes.byteLength) throw badInput('OpenPGP field cut short')
  return (((bytes[at] as number) << 24) >>> 0) + ((bytes[at + 1] as number) << 16) + ((bytes[at + 2] as number) << 8) + (bytes[at + 3] as number)
}

export function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((x, i) => x === b[i])
}
