import { MallaError } from '../core/errors.js'
import { Transfer, type FileSink, type IncomingTransfer, type TransferLink } from './transfer.js'
import type { TransferReason } from './wire.js'
import { sha256Stream, type StreamHash } from './sha256-stream.js'

/**
 * Bytes received and not yet taken by a slow sink, at most: past it the transfer fails ('sink-too-slow').
 * A data channel has no receive window the app could close, so this is the only bound on them.
 */
const MAX_SINK_BACKLOG_BYTES = 64 * 1024 * 1024
/**
 * This side acks as soon as its store has taken this many bytes since its last ack: at every frame. The sender
 * times each frame to its ack, and keeps only as much of the window in flight as the link needs (send-window.ts);
 * with an ack per frame, that can be as little as one frame.
 */
const ACK_EVERY_BYTES = 1

/**
 * A file someone offers this side. Nothing is received until `accept` (a stranger cannot push bytes at anyone);
 * then every byte goes through a SHA-256 and into the sink, and `done` comes only once the hash matches the
 * sender's and the sink is closed.
 */
export class Incoming extends Transfer implements IncomingTransfer {
  private sink: FileSink | undefined
  /** Made when the transfer is accepted, before the sender hears of it: no byte can come before it. */
  private hash: StreamHash | undefined
  /** The sink's writes, one after the other; each link checks that the transfer is still on. */
  private writes: Promise<void> = Promise.resolve()
  private backlog = 0
  /** The sender's `done` matched: the sink is being closed, and nothing more is taken. */
  private closing = false
  /** Bytes the sink has taken, and as many as the last `ack` said. */
  private stored = 0
  private acked = 0

  /**
   * `window`: the sender may have this many bytes on their way that the sink has not taken yet (§16); each
   * frame the sink takes is acknowledged (`onStored`).
   */
  constructor(id: number, name: string, size: number, mime: string, link: TransferLink, private readonly window: number) {
    super(id, name, size, mime, link)
  }

  accept(sink: FileSink): void {
    if (this.current !== 'offered') throw new MallaError('PEER', `cannot accept a transfer that is ${this.current}`)
    this.sink = sink
    this.current = 'receiving'
    void sha256Stream().then((hash) => {
      if (this.current !== 'receiving') return
      this.hash = hash
      this.startMeter()
      this.link.control({ t: 'accept', id: this.id, window: this.window, ackEvery: ACK_EVERY_BYTES })
    })
  }

  decline(): void {
    if (this.current === 'offered') this.stop('declined')
    else this.cancel()
  }

  cancel(): void {
    this.stop('cancelled')
  }

  drop(reason: 'closed' | 'stopped'): void {
    if (reason === 'stopped') this.stop('stopped')
    else this.finish('closed', undefined)
  }

  /** Data for this transfer; false when it was not taken (not accepted yet, or already complete). */
  take(bytes: Uint8Array): boolean {
    const sink = this.sink
    const hash = this.hash
    if (this.current !== 'receiving' || !sink || !hash || this.closing) return false
    if (this.moved + bytes.byteLength > this.size) {
      this.stop('size-exceeded')
      return true
    }
    hash.update(bytes)
    this.backlog += bytes.byteLength
    if (this.backlog > MAX_SINK_BACKLOG_BYTES) {
      this.stop('sink-too-slow')
      return true
    }
    this.write(() => sink.write(bytes), bytes.byteLength, () => this.onStored(bytes.byteLength))
    this.advance(bytes.byteLength)
    return true
  }

  /** The sender has sent everything, hashing to `expected`; false when this was not the time for it. */
  onDone(expected: string): boolean {
    const sink = this.sink
    const hash = this.hash
    if (this.current !== 'receiving' || !sink || !hash || this.closing) return false
    const actual = this.moved === this.size && this.hash ? this.hash.hex() : undefined
    if (actual !== expected) {
      this.stop(actual === undefined ? 'incomplete' : 'hash-mismatch')
      return true
    }
    this.closing = true
    this.write(() => sink.close(), 0)
    this.writes = this.writes.then(() => {
      if (this.ended) return
      this.link.control({ t: 'received', id: this.id, sha256: actual })
      this.finishDone(actual)
    })
    return true
  }

  /** The sender cancelled, or gave up: `reason` as it said. */
  onCancel(reason: TransferReason | undefined): void {
    this.finish(reason ?? 'cancelled', 'remote')
  }

  protected release(ok: boolean): void {
    const sink = this.sink
    if (ok || !sink) return
    // After the write in progress, if any: a sink is never asked to abort in the middle of a write.
    void this.writes.then(() => {
      try {
        sink.abort()
      } catch {
        // The transfer has ended already; a sink that cannot even abort has nothing more to say.
      }
    })
  }

  /** Ends the transfer here and tells the sender (`decline`, which after an accept means "stop"). */
  private stop(reason: TransferReason): void {
    if (this.finish(reason, 'local')) this.link.control({ t: 'decline', id: this.id, reason })
  }

  /** Queues one call on the sink after the ones before it; a throw or a rejection fails the transfer. */
  private write(call: () => void | Promise<void>, bytes: number, then?: () => void): void {
    this.writes = this.writes
      .then(() => (this.ended ? undefined : call()))
      .then(
        () => {
          this.backlog -= bytes
          then?.()
        },
        () => this.stop('sink-failed'),
      )
  }

  /** The sink took `n` more bytes: the sender hears of it (§16: every `ACK_EVERY_BYTES`, so every frame). */
  private onStored(n: number): void {
    this.stored += n
    if (this.ended || this.closing || this.stored - this.acked < ACK_EVERY_BYTES) return
    this.acked = this.stored
    this.link.control({ t: 'ack', id: this.id, n: this.stored })
  }
}
