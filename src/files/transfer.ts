import { createNanoEvents, type Unsubscribe } from 'nanoevents'
import { endStateOf, type ControlFrame, type TransferReason } from './wire.js'

/** Where a file to send comes from: a `Blob` in a page (`blobSource`), a file on disk in Node (`fileSource`). */
export interface FileSource {
  readonly size: number
  /** Up to `length` bytes from `offset` (at least one while `offset < size`). */
  read(offset: number, length: number): Promise<Uint8Array>
  /** Called once when the transfer ends, however it ends. */
  close?(): void | Promise<void>
}

/** Where a received file goes. Writes come one at a time, in order: a returned promise holds back the next. */
export interface FileSink {
  write(chunk: Uint8Array): void | Promise<void>
  /** All bytes are written and their hash matched: keep the file. */
  close(): void | Promise<void>
  /** The transfer failed or was cancelled: drop what was written. Called after any write in progress settles. */
  abort(): void
}

export type TransferState = 'offered' | 'sending' | 'receiving' | 'done' | 'cancelled' | 'failed'

export interface TransferProgress {
  readonly bytes: number
  readonly size: number
  /** Over the last few seconds. */
  readonly bytesPerSecond: number
  /** At that rate; Infinity while no rate is known yet. */
  readonly secondsLeft: number
}

export interface TransferEnd {
  readonly state: 'done' | 'cancelled' | 'failed'
  readonly reason?: TransferReason
  /** Which side ended it: absent when it is done, or when the channel closed. */
  readonly by?: 'local' | 'remote'
}

export interface TransferEvents {
  /** At most every 100 ms, and once more when the last byte is sent or received. */
  progress(progress: TransferProgress): void
  /** The receiver has every byte and they hash to `sha256` (hex) on both sides. */
  done(result: { readonly sha256: string }): void
  /** Exactly once, last: done, cancelled or failed. */
  end(end: TransferEnd): void
}

/** What both kinds of transfer show. */
export interface FileTransfer {
  /** Chosen by the sender; unique among its transfers on this channel. */
  readonly id: number
  /** Sanitized (see `sanitizeName`): safe to show, and to use as a file name in one directory. */
  readonly name: string
  readonly size: number
  readonly mime: string
  readonly state: TransferState
  /** Bytes sent (handed to the channel) or received so far. */
  readonly bytes: number
  /** Stops the transfer on both sides (the other ends 'cancelled', by 'remote'); nothing once it has ended. */
  cancel(): void
  on<E extends keyof TransferEvents>(event: E, listener: TransferEvents[E]): Unsubscribe
}

/** A file this side offered: 'offered' until the receiver accepts, 'sending' from then on. */
export type OutgoingTransfer = FileTransfer

/** A file the other side offers: 'offered' until `accept` or `decline`, 'receiving' from an accept on. */
export interface IncomingTransfer extends FileTransfer {
  /** Takes the file into `sink`. Throws `MallaError('PEER')` unless the transfer is still offered. */
  accept(sink: FileSink): void
  /** Refuses the offer (the sender ends 'cancelled', reason 'declined'); once accepted, the same as `cancel`. */
  decline(): void
}

/** What a transfer needs of the `FileTransfers` it belongs to. */
export interface TransferLink {
  /** Sends a control frame; a channel that is not open takes nothing (its close ends every transfer). */
  control(frame: ControlFrame): void
}

const PROGRESS_EVERY_MS = 100
/** How far back the rate looks: long enough to smooth bursts, short enough to follow a changing link. */
const RATE_WINDOW_MS = 3000

/**
 * What an outgoing and an incoming transfer share: a file's description, state, bytes, progress and end.
 * (TS `private` rather than `#`: the page bundle targets ES2020, where `#` fields cost a WeakMap each.)
 */
export abstract class Transfer implements FileTransfer {
  private readonly emitter = createNanoEvents<TransferEvents>()
  protected current: TransferState = 'offered'
  protected moved = 0
  /** (time, bytes) at each progress event within the rate window, oldest first. */
  private samples: [number, number][] = []
  private lastEmit = -Infinity

  constructor(
    readonly id: number,
    readonly name: string,
    readonly size: number,
    readonly mime: string,
    protected readonly link: TransferLink,
  ) {}

  get state(): TransferState {
    return this.current
  }

  get bytes(): number {
    return this.moved
  }

  get ended(): boolean {
    return this.current === 'done' || this.current === 'cancelled' || this.current === 'failed'
  }

  on<E extends keyof TransferEvents>(event: E, listener: TransferEvents[E]): Unsubscribe {
    return this.emitter.on(event, listener)
  }

  abstract cancel(): void

  /** The channel closed, or its FileTransfers stopped: ends the transfer without a word on the wire. */
  abstract drop(reason: 'closed' | 'stopped'): void

  /** Releases the sink or the source; runs once, when the transfer ends. */
  protected abstract release(ok: boolean): void

  /** Bytes moved: counted, and reported at most every 100 ms and at the last byte. */
  protected advance(n: number): void {
    this.moved += n
    this.report(this.moved === this.size)
  }

  /** Marks the start of moving bytes: the rate counts from here, not from the offer. */
  protected startMeter(): void {
    this.samples = [[Date.now(), this.moved]]
  }

  protected finishDone(sha256: string): void {
    if (this.ended) return
    this.report(true)
    this.current = 'done'
    this.release(true)
    emitSafely(this.emitter.events.done, { sha256 })
    emitSafely(this.emitter.events.end, { state: 'done' })
    this.emitter.events = {}
  }

  /** Ends the transfer as cancelled or failed, as `reason` says; false if it had ended already. */
  protected finish(reason: TransferReason, by: 'local' | 'remote' | undefined): boolean {
    if (this.ended) return false
    const state = endStateOf(reason)
    this.current = state
    this.release(false)
    emitSafely(this.emitter.events.end, by ? { state, reason, by } : { state, reason })
    this.emitter.events = {}
    return true
  }

  private report(final: boolean): void {
    const now = Date.now()
    if (!final && now - this.lastEmit < PROGRESS_EVERY_MS) return
    if (final && this.lastEmit !== -Infinity && this.samples.at(-1)?.[1] === this.moved) return
    this.lastEmit = now
    const samples = this.samples
    samples.push([now, this.moved])
    while (samples.length > 2 && now - (samples[1] as [number, number])[0] >= RATE_WINDOW_MS) samples.shift()
    const [t0, b0] = samples[0] as [number, number]
    const rate = now > t0 ? ((this.moved - b0) * 1000) / (now - t0) : 0
    const left = this.size - this.moved
    emitSafely(this.emitter.events.progress, {
      bytes: this.moved,
      size: this.size,
      bytesPerSecond: Math.round(rate),
      secondsLeft: left === 0 ? 0 : rate > 0 ? left / rate : Infinity,
    })
  }
}

/**
 * Emits to every listener even if one throws; the exception is rethrown from a microtask, where it still surfaces
 * but cannot unwind into a transfer's state machine halfway through a frame (nanoevents' own emit would).
 */
export function emitSafely<A extends unknown[]>(listeners: readonly ((...args: A) => void)[] | undefined, ...args: A): void {
  for (const listener of listeners ?? []) {
    try {
      listener(...args)
    } catch (e) {
      queueMicrotask(() => {
        throw e
      })
    }
  }
}
