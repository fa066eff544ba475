import { MallaError } from '../../core/errors.js'

/**
 * The framing of LibreMesh's shared-state-async (C++, TCP port 3490), as its `src/sharedstate.cc` speaks it:
 * a version handshake of three big-endian u32 (client 1, server 1, client again), then one frame each way,
 * `[u8 name length][type name][u32 BE data length][data]`, each acknowledged by a u32 BE count of the bytes
 * the receiver took for it. Pure byte work, shared by every end; the sockets live in `node/async/`.
 */

/** LibreMesh's port for shared-state-async. */
export const ASYNC_PORT = 3490
export const ASYNC_WIRE_VERSION = 1
/** The C++ daemon refuses type names longer than this (DATA_TYPE_NAME_MAX_LENGHT). */
export const ASYNC_NAME_MAX_BYTES = 128
/** And data outside these bounds (DATA_MAX_LENGHT is 1 MiB; the smallest JSON it takes is 2 bytes). */
export const ASYNC_DATA_MAX_BYTES = 1024 * 1024
export const ASYNC_DATA_MIN_BYTES = 2
/** Bytes before the data: name length, the longest name, data length. */
export const ASYNC_HEADER_MAX_BYTES = 1 + ASYNC_NAME_MAX_BYTES + 4

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

export class AsyncProtocolError extends MallaError {
  constructor(message: string) {
    super('PEER', message)
    this.name = 'AsyncProtocolError'
  }
}

export function u32(value: number): Uint8Array {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, value >>> 0, false)
  return out
}

export function readU32(bytes: Uint8Array): number {
  if (bytes.length !== 4) throw new AsyncProtocolError(`expected 4 bytes, got ${bytes.length}`)
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, false)
}

/** Throws unless `bytes` (the first two handshake messages) carry version 1. The third is never checked: the C++ client sends it in host order. */
export function checkVersion(bytes: Uint8Array): void {
  const version = readU32(bytes)
  if (version !== ASYNC_WIRE_VERSION) throw new AsyncProtocolError(`shared-state-async wire version ${version}, this end speaks ${ASYNC_WIRE_VERSION}`)
}

/** The length byte of a frame's type name, checked as the C++ receiver checks it. */
export function checkNameLength(length: number): number {
  if (length < 1 || length > ASYNC_NAME_MAX_BYTES) throw new AsyncProtocolError(`type name of ${length} bytes (1 to ${ASYNC_NAME_MAX_BYTES} are taken)`)
  return length
}

export function checkDataLength(length: number): number {
  if (length < ASYNC_DATA_MIN_BYTES || length > ASYNC_DATA_MAX_BYTES) {
    throw new AsyncProtocolError(`frame data of ${length} bytes (${ASYNC_DATA_MIN_BYTES} to ${ASYNC_DATA_MAX_BYTES} are taken)`)
  }
  return length
}

export function decodeName(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes)
  } catch {
    throw new AsyncProtocolError('type name is not UTF-8')
  }
}

export function decodeData(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes)
  } catch {
    throw new AsyncProtocolError('frame data is not UTF-8')
  }
}

/** One whole frame. Throws TOO_LARGE for a name or data the C++ receiver would refuse. */
export function encodeFrame(typeName: string, data: string): Uint8Array {
  const name = encoder.encode(typeName)
  const body = encoder.encode(data)
  if (name.length < 1 || name.length > ASYNC_NAME_MAX_BYTES) throw new MallaError('BAD_INPUT', `type name ${JSON.stringify(typeName)} does not fit a shared-state-async frame (1 to ${ASYNC_NAME_MAX_BYTES} bytes)`)
  if (body.length > ASYNC_DATA_MAX_BYTES) throw new MallaError('TOO_LARGE', `table ${typeName} is ${body.length} bytes as shared-state-async JSON, over the protocol's ${ASYNC_DATA_MAX_BYTES}`)
  const out = new Uint8Array(1 + name.length + 4 + body.length)
  out[0] = name.length
  out.set(name, 1)
  out.set(u32(body.length), 1 + name.length)
  out.set(body, 5 + name.length)
  return out
}
