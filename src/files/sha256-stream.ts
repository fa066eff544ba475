import { sha256 } from '@noble/hashes/sha2'
import { bytesToHex } from '@noble/hashes/utils'
import { createSHA256 } from 'hash-wasm'

/** A SHA-256 fed a file's bytes as they go by. */
export interface StreamHash {
  update(bytes: Uint8Array): void
  /** The digest as 64 lowercase hex digits; once, at the end. */
  hex(): string
}

/**
 * A streaming SHA-256 for files. WebAssembly (hash-wasm) first: it hashes about twice as fast as plain JS, and on
 * a phone or a small box that is most of what a transfer costs besides moving the bytes. Like the plain-JS one
 * it needs no WebCrypto, which pages served over plain http:// do not have. Where WebAssembly is missing or
 * refused (a strict Content-Security-Policy), the plain-JS one.
 */
export async function sha256Stream(): Promise<StreamHash> {
  try {
    const h = await createSHA256()
    h.init()
    return { update: (bytes) => void h.update(bytes), hex: () => h.digest('hex') }
  } catch {
    const h = sha256.create()
    return { update: (bytes) => void h.update(bytes), hex: () => bytesToHex(h.digest()) }
  }
}
