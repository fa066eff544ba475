import { randomFillSync } from 'node:crypto'
import { sha256 } from '@noble/hashes/sha2'
import { bytesToHex } from '@noble/hashes/utils'
import type { FileSink, FileSource, IncomingTransfer, OutgoingTransfer, TransferEnd, TransferProgress } from '../../src/files/file-transfer.js'

/** `n` random bytes. */
export function randomBytes(n: number): Uint8Array {
  return randomFillSync(new Uint8Array(n))
}

export const hexSha256 = (bytes: Uint8Array): string => bytesToHex(sha256(bytes))

/** A file in memory, counting its reads; `onRead` runs before each one (to cancel or fail at a chosen offset). */
export function memorySource(bytes: Uint8Array, onRead?: (offset: number, length: number) => void): FileSource & { reads: number; closed: number } {
  const source = {
    size: bytes.byteLength,
    reads: 0,
    closed: 0,
    async read(offset: number, length: number) {
      source.reads++
      onRead?.(offset, length)
      return bytes.slice(offset, offset + length)
    },
    close() {
      source.closed++
    },
  }
  return source
}

/** A sink in memory that records what was done to it; `onWrite` runs before each write (and may throw). */
export function memorySink(onWrite?: (written: number) => void): FileSink & { readonly chunks: Uint8Array[]; closed: number; aborted: number; bytes(): Uint8Array } {
  const chunks: Uint8Array[] = []
  let written = 0
  const sink = {
    chunks,
    closed: 0,
    aborted: 0,
    write(chunk: Uint8Array) {
      onWrite?.(written)
      chunks.push(chunk.slice())
      written += chunk.byteLength
    },
    close() {
      sink.closed++
    },
    abort() {
      sink.aborted++
    },
    bytes() {
      const out = new Uint8Array(written)
      let at = 0
      for (const c of chunks) out.set(c, (at += c.byteLength) - c.byteLength)
      return out
    },
  }
  return sink
}

/** A transfer's events as a record, with its end as a promise. */
export function watch(t: OutgoingTransfer | IncomingTransfer): { progress: TransferProgress[]; done: string[]; ended: Promise<TransferEnd> } {
  const progress: TransferProgress[] = []
  const done: string[] = []
  t.on('progress', (p) => void progress.push(p))
  t.on('done', ({ sha256 }) => void done.push(sha256))
  return { progress, done, ended: new Promise((resolve) => t.on('end', resolve)) }
}
