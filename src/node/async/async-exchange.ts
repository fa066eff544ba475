import { connect, type Socket } from 'node:net'
import {
  ASYNC_DATA_MAX_BYTES,
  ASYNC_HEADER_MAX_BYTES,
  ASYNC_WIRE_VERSION,
  AsyncProtocolError,
  checkDataLength,
  checkNameLength,
  checkVersion,
  decodeData,
  decodeName,
  encodeFrame,
  readU32,
  u32,
} from '../../sync/async/async-frames.js'
import { decodeSlice, type AsyncEntry } from '../../sync/async/state-slice.js'
import { SocketReader } from './socket-reader.js'

/**
 * One shared-state-async exchange over one TCP connection, either end (docs/protocol.md §19): the client
 * sends its whole state for a type, the server merges it and answers with its whole state, which the client
 * merges. What the two ends hold lives behind AsyncState.
 */
export interface AsyncState {
  /** Whether this end takes `type` (the C++ daemon drops connections for types not registered). */
  serves(type: string): boolean
  /** The whole state of `type` as frame JSON. */
  stateOf(type: string): Promise<string>
  /** Merges what a peer sent; `from` is its address. */
  merge(type: string, slice: ReadonlyMap<string, AsyncEntry>, from: string): Promise<void>
}

export interface ExchangeOutcome {
  readonly type: string
  readonly sentBytes: number
  readonly receivedBytes: number
}

/** The most a side may send before it is asked: one whole frame and its ack. */
const MAX_AHEAD = ASYNC_HEADER_MAX_BYTES + ASYNC_DATA_MAX_BYTES + 8

interface Frame {
  readonly type: string
  readonly text: string
  readonly bytes: number
}

/**
 * Reads one frame. `admitType` runs once the name is known and `admitBytes` once the length is, both before the
 * data is read, so an unknown type or a sender over its budget costs no more than the header.
 */
async function readFrame(reader: SocketReader, admitType: (type: string) => void, admitBytes: (bytes: number) => void): Promise<Frame> {
  const nameLength = checkNameLength((await reader.read(1))[0] as number)
  const type = decodeName(await reader.read(nameLength))
  admitType(type)
  const dataLength = checkDataLength(readU32(await reader.read(4)))
  admitBytes(dataLength)
  const text = decodeData(await reader.read(dataLength))
  return { type, text, bytes: 1 + nameLength + 4 + dataLength }
}

/** Bounds an exchange in time: past `timeoutMs` the socket is destroyed and the exchange fails. */
function deadline(socket: Socket, timeoutMs: number, what: string): () => void {
  const timer = setTimeout(() => socket.destroy(new AsyncProtocolError(`${what}: no complete exchange within ${timeoutMs} ms`)), timeoutMs)
  return () => clearTimeout(timer)
}

export interface ServeOptions {
  readonly timeoutMs: number
  /** Charges the sender for a frame's data before it is read; throws to refuse it. */
  readonly charge?: (bytes: number) => void
}

/** Serves one connection a peer opened (the C++ daemon's handleReqSyncConnection). Always ends the socket. */
export async function serveAsyncConnection(socket: Socket, state: AsyncState, options: ServeOptions): Promise<ExchangeOutcome> {
  const from = socket.remoteAddress ?? 'unknown'
  const reader = new SocketReader(socket, MAX_AHEAD)
  const done = deadline(socket, options.timeoutMs, `shared-state-async exchange with ${from}`)
  try {
    checkVersion(await reader.read(4))
    socket.write(u32(ASYNC_WIRE_VERSION))
    // The client's echo, for its round-trip estimate: the C++ client sends it in host byte order, so it is never checked.
    await reader.read(4)
    const frame = await readFrame(
      reader,
      (type) => {
        if (!state.serves(type)) throw new AsyncProtocolError(`type ${JSON.stringify(type.slice(0, 130))} is not one this node serves over shared-state-async`)
      },
      (bytes) => options.charge?.(bytes),
    )
    socket.write(u32(frame.bytes))
    await state.merge(frame.type, decodeSlice(frame.text), from)
    const reply = encodeFrame(frame.type, await state.stateOf(frame.type))
    socket.write(reply)
    const ack = readU32(await reader.read(4))
    if (ack !== reply.length) throw new AsyncProtocolError(`peer acknowledged ${ack} bytes of ${reply.length}`)
    return { type: frame.type, sentBytes: 4 + 4 + reply.length, receivedBytes: 4 + 4 + frame.bytes + 4 }
  } finally {
    done()
    socket.end()
    socket.destroySoon()
  }
}

export interface SyncOptions {
  readonly host: string
  readonly port: number
  readonly timeoutMs: number
}

/** Syncs `type` with the daemon at host:port (the C++ daemon's syncWithPeer). */
export async function syncWithAsyncPeer(type: string, state: AsyncState, options: SyncOptions): Promise<ExchangeOutcome> {
  const mine = encodeFrame(type, await state.stateOf(type))
  const socket = connect({ host: options.host, port: options.port })
  socket.setNoDelay(true)
  const reader = new SocketReader(socket, MAX_AHEAD)
  const where = `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`
  const done = deadline(socket, options.timeoutMs, `shared-state-async sync of ${type} with ${where}`)
  try {
    socket.write(u32(ASYNC_WIRE_VERSION))
    const version = await reader.read(4)
    checkVersion(version)
    socket.write(version)
    socket.write(mine)
    const ack = readU32(await reader.read(4))
    if (ack !== mine.length) throw new AsyncProtocolError(`${where} acknowledged ${ack} bytes of ${mine.length}`)
    const frame = await readFrame(
      reader,
      (got) => {
        if (got !== type) throw new AsyncProtocolError(`${where} answered with type ${JSON.stringify(got.slice(0, 130))} to a sync of ${type}`)
      },
      () => {},
    )
    socket.write(u32(frame.bytes))
    await state.merge(type, decodeSlice(frame.text), options.host)
    return { type, sentBytes: 4 + 4 + mine.length + 4, receivedBytes: 4 + 4 + frame.bytes }
  } finally {
    done()
    socket.end()
    socket.destroySoon()
  }
}
