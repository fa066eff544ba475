import { MallaError } from '../../core/errors.js'
import type { FileSink, FileSource } from '../../files/transfer.js'

/** Received bytes are gathered up to this much, then become one `Blob` part. */
const PART_BYTES = 4 * 1024 * 1024

/**
 * A sink that keeps a received file as `Blob` parts rather than in the page's heap: Chromium keeps large blobs
 * in its blob storage and pages them to disk, so hundreds of MB fit where one growing ArrayBuffer would not.
 * `blob()` gives the file (for `URL.createObjectURL`, say) once the transfer is done.
 */
export class BlobSink implements FileSink {
  #parts: Blob[] = []
  #chunks: Uint8Array<ArrayBuffer>[] = []
  #gathered = 0
  #state: 'open' | 'closed' | 'aborted' = 'open'

  write(chunk: Uint8Array): void {
    if (this.#state !== 'open') return
    // A chunk on a SharedArrayBuffer cannot go into a Blob as it is.
    this.#chunks.push(chunk.buffer instanceof ArrayBuffer ? (chunk as Uint8Array<ArrayBuffer>) : new Uint8Array(chunk))
    this.#gathered += chunk.byteLength
    if (this.#gathered >= PART_BYTES) this.#seal()
  }

  close(): void {
    if (this.#state !== 'open') return
    this.#seal()
    this.#state = 'closed'
  }

  abort(): void {
    this.#state = 'aborted'
    this.#parts = []
    this.#chunks = []
  }

  /** The whole file, once the sink is closed; throws `MallaError('PEER')` before that, or after an abort. */
  blob(mime = ''): Blob {
    if (this.#state !== 'closed') throw new MallaError('PEER', `the file is not complete (the sink is ${this.#state})`)
    return new Blob(this.#parts, { type: mime })
  }

  /** The chunks gathered so far become one Blob part, and the arrays are let go. */
  #seal(): void {
    if (this.#chunks.length) this.#parts.push(new Blob(this.#chunks))
    this.#chunks = []
    this.#gathered = 0
  }
}

export const blobSink = (): BlobSink => new BlobSink()

/** A `Blob` (a `File` from an `<input type=file>` or a drop) as something to send, read a slice at a time. */
export function blobSource(blob: Blob): FileSource {
  return {
    size: blob.size,
    read: async (offset, length) => new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer()),
  }
}
