import type { Socket } from 'node:net'
import { AsyncProtocolError } from '../../sync/async/async-frames.js'

/**
 * Reads exact byte counts off a socket for a lock-step protocol. Whatever the far end sends beyond
 * `maxBuffered` before it is asked for ends the connection: the protocol never lets a side run ahead by more
 * than one frame, so a sender that does is not one to hold memory for.
 */
export class SocketReader {
  private chunks: Buffer[] = []
  private buffered = 0
  private waiting: { bytes: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined
  private failure: Error | undefined

  constructor(
    socket: Socket,
    private readonly maxBuffered: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk)
      this.buffered += chunk.length
      if (this.buffered > this.maxBuffered) {
        this.fail(new AsyncProtocolError(`peer sent ${this.buffered} bytes ahead of the protocol (at most ${this.maxBuffered})`))
        socket.destroy()
        return
      }
      this.settle()
    })
    socket.on('end', () => this.fail(new AsyncProtocolError('peer closed the connection mid-exchange')))
    socket.on('close', () => this.fail(new AsyncProtocolError('connection closed mid-exchange')))
    socket.on('error', (e) => this.fail(new AsyncProtocolError(`connection failed: ${e.message}`)))
  }

  /** Resolves with the next `bytes` bytes. */
  read(bytes: number): Promise<Buffer> {
    if (this.waiting) return Promise.reject(new Error('SocketReader: one read at a time'))
    return new Promise((resolve, reject) => {
      this.waiting = { bytes, resolve, reject }
      this.settle()
    })
  }

  private settle(): void {
    const w = this.waiting
    if (!w) return
    if (this.buffered >= w.bytes) {
      const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.buffered)
      this.chunks = all.length > w.bytes ? [all.subarray(w.bytes)] : []
      this.buffered -= w.bytes
      this.waiting = undefined
      w.resolve(all.subarray(0, w.bytes))
    } else if (this.failure) {
      this.waiting = undefined
      w.reject(this.failure)
    }
  }

  private fail(e: Error): void {
    this.failure ??= e
    this.settle()
  }
}
