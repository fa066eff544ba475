import { badInput, MallaError } from '../../core/errors.js'
import { silentLogger, type Logger } from '../../core/log.js'
import { Reassembly, type ReassemblyLimits } from './reassembly.js'
import { dataFrames, decodeFrame, MAX_ACTION_NAME_BYTES, MAX_META_BYTES, PING, pingFrame, PONG, utf8, type PayloadKind } from './wire.js'

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }
/** What an action carries, as in Trystero: JSON values, strings, and binary (Blob, ArrayBuffer, typed arrays). */
export type DataPayload = JsonValue | Blob | ArrayBuffer | ArrayBufferView
/** One peer id, several, or everyone connected (null or absent). */
export type TargetPeers = string | readonly string[] | null | undefined
export interface MessageContext {
  readonly peerId: string
  readonly metadata?: JsonValue
}
export type ActionProgressHandler = (progress: number, context: MessageContext) => void
export interface SendOptions {
  readonly target?: TargetPeers
  readonly metadata?: JsonValue
  /** Called per chunk and per peer with the fraction sent (reaching 1 with the last chunk). */
  readonly onProgress?: ActionProgressHandler
  readonly signal?: AbortSignal
}
export interface MessageActionConfig<T extends DataPayload> {
  readonly kind?: 'message'
  readonly onMessage?: (data: T, context: MessageContext) => void | Promise<void>
  readonly onReceiveProgress?: ActionProgressHandler
}

/** Trystero up to 0.21 gave `[send, receive, onProgress]`; the action destructures so too. */
export type LegacySend<T> = (data: T, targets?: TargetPeers, metadata?: JsonValue, onProgress?: (percent: number, peerId: string, metadata?: JsonValue) => void) => Promise<void>
export type LegacyReceive<T> = (handler: (data: T, peerId: string, metadata?: JsonValue) => void) => void
export type LegacyProgress = (handler: (percent: number, peerId: string, metadata?: JsonValue) => void) => void

/** An action of Trystero 0.25 (`send`, `onMessage`, `onReceiveProgress`), which also destructures as the older tuple. */
export type MessageAction<T extends DataPayload = DataPayload> = {
  send(data: T, options?: SendOptions): Promise<void>
  onMessage: ((data: T, context: MessageContext) => void | Promise<void>) | null
  onReceiveProgress: ActionProgressHandler | null
} & readonly [LegacySend<T>, LegacyReceive<T>, LegacyProgress]

/** A connection actions go over: `send` resolves once the frame is queued on it. */
export interface ActionPeer {
  send(frame: Uint8Array): Promise<void>
}

export interface ActionsOptions {
  /** The peers connected now, by id. */
  readonly peers: () => ReadonlyMap<string, ActionPeer>
  readonly limits?: ReassemblyLimits
  /** How long `ping` waits for the answer (default 5 s). */
  readonly pingTimeoutMs?: number
  readonly log?: Logger
  readonly now?: () => number
}

/** Messages kept for an action whose `onMessage` is not set yet, at most (Trystero keeps them all). */
const MAX_PENDING = 32

interface ActionState {
  readonly name: Uint8Array
  onMessage: ((data: DataPayload, context: MessageContext) => void | Promise<void>) | null
  onReceiveProgress: ActionProgressHandler | null
  readonly pending: Array<[DataPayload, MessageContext]>
  readonly action: MessageAction
}

/**
 * Trystero's actions over malla connections (docs/trystero.md): payloads cut into frames (wire.ts) and
 * sent to each target peer in turn, chunks of different sends interleaving; received chunks reassembled
 * within bounds (reassembly.ts); pings answered. It knows nothing of rooms: the room hands it peers and frames.
 */
export class Actions {
  private readonly actions = new Map<string, ActionState>()
  private readonly reassembly: Reassembly
  private readonly pings = new Map<number, { peer: string; resolve: (ms: number) => void; reject: (e: MallaError) => void; timer: ReturnType<typeof setTimeout>; at: number }>()
  private readonly log: Logger
  private nextTransfer = 1
  private nextPing = 1
  /** Frames that were no frame at all, and messages for actions this page never made. */
  readonly ignored = { frames: 0, unknownAction: 0 }

  constructor(private readonly options: ActionsOptions) {
    this.reassembly = new Reassembly(options.limits, options.now)
    this.log = options.log ?? silentLogger
  }

  get dropped(): Readonly<Record<string, number>> {
    return this.reassembly.dropped
  }

  /** Bytes reserved by transfers still arriving: all of them, or `peer`'s. */
  reserved(peer?: string): number {
    return this.reassembly.reserved(peer)
  }

  make<T extends DataPayload = DataPayload>(name: string, config: MessageActionConfig<T> = {}): MessageAction<T> {
    if (typeof name !== 'string' || name === '') throw badInput('an action needs a name')
    const existing = this.actions.get(name)
    if (existing) return existing.action as unknown as MessageAction<T>
    if ((config as { kind?: string }).kind !== undefined && config.kind !== 'message') throw badInput(`malla/trystero has message actions only, not kind ${JSON.stringify((config as { kind?: unknown }).kind)}`)
    const nameBytes = utf8(name)
    if (nameBytes.byteLength > MAX_ACTION_NAME_BYTES) throw badInput(`action name "${name}" (${nameBytes.byteLength} bytes) is over the limit of ${MAX_ACTION_NAME_BYTES} bytes; choose a shorter name`)
    const self = this
    const send = (data: T, options: SendOptions = {}) => this.send(nameBytes, data, options)
    const legacySend: LegacySend<T> = (data, targets, metadata, onProgress) =>
      send(data, { target: targets, ...(metadata !== undefined ? { metadata } : {}), ...(onProgress ? { onProgress: (p, c) => onProgress(p, c.peerId, c.metadata) } : {}) })
    const legacyReceive: LegacyReceive<T> = (handler) => (state.action.onMessage = (data, c) => handler(data as T, c.peerId, c.metadata))
    const legacyProgress: LegacyProgress = (handler) => (state.action.onReceiveProgress = (p, c) => handler(p, c.peerId, c.metadata))
    const action = {
      send,
      get onMessage() {
        return state.onMessage
      },
      set onMessage(handler) {
        state.onMessage = handler
        if (handler) for (const [data, context] of state.pending.splice(0)) self.call(handler, data, context)
      },
      get onReceiveProgress() {
        return state.onReceiveProgress
      },
      set onReceiveProgress(handler) {
        state.onReceiveProgress = handler
      },
      0: legacySend,
      1: legacyReceive,
      2: legacyProgress,
      length: 3,
      *[Symbol.iterator]() {
        yield legacySend
        yield legacyReceive
        yield legacyProgress
      },
    }
    const state: ActionState = { name: nameBytes, onMessage: null, onReceiveProgress: config.onReceiveProgress ?? null, pending: [], action: action as unknown as MessageAction }
    this.actions.set(name, state)
    if (config.onMessage) state.action.onMessage = config.onMessage as ActionState['onMessage']
    return action as unknown as MessageAction<T>
  }

  /** A frame from `peer` (a binary message of its connection's app channel). */
  receive(peer: string, data: Uint8Array): void {
    const frame = decodeFrame(data)
    if (!frame) {
      this.ignored.frames++
      return
    }
    if (frame.type === 'ping') {
      this.options.peers().get(peer)?.send(pingFrame(PONG, frame.id)).catch((e: Error) => this.log.debug('pong not sent', { peer, error: e.message }))
      return
    }
    if (frame.type === 'pong') {
      const waiting = this.pings.get(frame.id)
      if (!waiting || waiting.peer !== peer) return
      this.pings.delete(frame.id)
      clearTimeout(waiting.timer)
      waiting.resolve(this.now() - waiting.at)
      return
    }
    const outcome = this.reassembly.chunk(peer, frame)
    if (outcome.t === 'dropped') {
      if (outcome.why !== 'unknown') this.log.warn('action data dropped', { peer, why: outcome.why })
      return
    }
    const t = outcome.transfer
    const state = this.actions.get(t.name)
    if (!state) {
      if (outcome.t === 'done') this.ignored.unknownAction++
      return
    }
    const metadata = t.meta === undefined ? undefined : parseJson(t.meta)
    const context: MessageContext = metadata === undefined ? { peerId: peer } : { peerId: peer, metadata }
    state.onReceiveProgress?.(t.total === 0 ? 1 : t.received / t.total, context)
    if (outcome.t !== 'done') return
    const value = decodePayload(t.kind, outcome.payload)
    if (value === undefined) {
      this.ignored.frames++
      return
    }
    if (state.onMessage) this.call(state.onMessage, value, context)
    else {
      if (state.pending.length >= MAX_PENDING) state.pending.shift()
      state.pending.push([value, context])
    }
  }

  /** Round trip to `peer` in milliseconds; rejects (PEER) when it is not connected or does not answer in time. */
  ping(peer: string): Promise<number> {
    const link = this.options.peers().get(peer)
    if (!link) return Promise.reject(new MallaError('PEER', `no connected peer ${peer}`))
    const id = this.nextPing++
    const ms = this.options.pingTimeoutMs ?? 5000
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(id)
        reject(new MallaError('PEER', `no answer to a ping from ${peer} within ${ms} ms`))
      }, ms)
      this.pings.set(id, { peer, resolve, reject, timer, at: this.now() })
      link.send(pingFrame(PING, id)).catch((e: Error) => {
        clearTimeout(timer)
        this.pings.delete(id)
        reject(new MallaError('PEER', `ping to ${peer} not sent: ${e.message}`, { cause: e }))
      })
    })
  }

  /** A peer left: what it was sending is dropped, pings to it fail. */
  forget(peer: string): void {
    this.reassembly.forget(peer)
    for (const [id, p] of this.pings) {
      if (p.peer !== peer) continue
      this.pings.delete(id)
      clearTimeout(p.timer)
      p.reject(new MallaError('PEER', `${peer} left`))
    }
  }

  close(): void {
    for (const peer of new Set([...this.pings.values()].map((p) => p.peer))) this.forget(peer)
  }

  private async send(name: Uint8Array, data: DataPayload, options: SendOptions): Promise<void> {
    throwIfAborted(options.signal)
    if (data === undefined) throw badInput('action data cannot be undefined')
    const [kind, payload] = await encodePayload(data)
    let meta: Uint8Array | undefined
    if (options.metadata !== undefined) {
      const text = JSON.stringify(options.metadata)
      if (text === undefined) throw badInput('this metadata cannot be sent as JSON')
      meta = utf8(text)
      if (meta.byteLength > MAX_META_BYTES) throw badInput(`metadata of ${meta.byteLength} bytes is over the limit of ${MAX_META_BYTES}`)
    }
    const frames = dataFrames(this.nextTransfer++ >>> 0, kind, name, meta, payload)
    const peers = this.options.peers()
    const targets = options.target === undefined || options.target === null ? [...peers.keys()] : typeof options.target === 'string' ? [options.target] : [...options.target]
    await Promise.all(
      targets.map(async (id) => {
        const link = peers.get(id)
        // As Trystero: a target that is not connected (any more) is skipped, not an error of the whole send.
        if (!link) return this.log.warn('no connected peer with this id; not sent to it', { peer: id })
        const context: MessageContext = options.metadata === undefined ? { peerId: id } : { peerId: id, metadata: options.metadata }
        let sent = 0
        for (const frame of frames) {
          throwIfAborted(options.signal)
          // A peer that left meanwhile: its leave is the news, not this send.
          if (this.options.peers().get(id) !== link) return
          await link.send(frame)
          sent++
          options.onProgress?.(sent / frames.length, context)
        }
      }),
    )
  }

  private call(handler: (data: DataPayload, context: MessageContext) => void | Promise<void>, data: DataPayload, context: MessageContext): void {
    // The app's handler runs on its own: its errors are the app's, and reported, not the connection's.
    void Promise.resolve()
      .then(() => handler(data, context))
      .catch((e: unknown) => this.log.error('action handler failed', { peer: context.peerId, error: e instanceof Error ? e.message : String(e) }))
  }

  private now(): number {
    return (this.options.now ?? (() => performance.now()))()
  }
}

const decoder = new TextDecoder('utf-8', { fatal: true })

async function encodePayload(data: DataPayload): Promise<[PayloadKind, Uint8Array]> {
  if (typeof Blob !== 'undefined' && data instanceof Blob) return ['binary', new Uint8Array(await data.arrayBuffer())]
  if (data instanceof ArrayBuffer) return ['binary', new Uint8Array(data)]
  if (ArrayBuffer.isView(data)) return ['binary', new Uint8Array(data.buffer, data.byteOffset, data.byteLength)]
  if (typeof data === 'string') return ['text', utf8(data)]
  const text = JSON.stringify(data)
  if (text === undefined) throw badInput('this value cannot be sent as JSON')
  return ['json', utf8(text)]
}

function decodePayload(kind: PayloadKind, bytes: Uint8Array): DataPayload | undefined {
  if (kind === 'binary') return bytes
  let text: string
  try {
    text = decoder.decode(bytes)
  } catch {
    return undefined
  }
  return kind === 'text' ? text : parseJson(text)
}

function parseJson(text: string): JsonValue | undefined {
  try {
    return JSON.parse(text) as JsonValue
  } catch {
    return undefined
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new MallaError('BAD_INPUT', 'the send was aborted', { cause: signal.reason })
}
