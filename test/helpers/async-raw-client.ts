import { connect, type Socket } from 'node:net'
import { SocketReader } from '../../src/node/async/socket-reader.js'

export interface RawClient {
  readonly socket: Socket
  readonly reader: SocketReader
  readonly closed: Promise<void>
}

/** A raw TCP client to a shared-state-async port that speaks exactly what the test writes; destroyed when the test ends. */
export async function rawAsyncClient(t: { after(fn: () => unknown): void }, host: string, port: number, localAddress?: string): Promise<RawClient> {
  const socket = connect({ host, port, ...(localAddress ? { localAddress } : {}) })
  t.after(() => socket.destroy())
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return { socket, reader: new SocketReader(socket, 4 * 1024 * 1024), closed }
}

/** `p`, or a rejection naming `what` after `ms`. */
export const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms).unref())])
