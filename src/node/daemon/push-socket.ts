import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { RawData, WebSocket, WebSocketServer } from 'ws'
import { asMallaError, MallaError } from '../../core/errors.js'
import type { Logger } from '../../core/log.js'
import { parseJsonText, parseTypeName } from '../../core/schema.js'
import type { Replica } from '../../replica/replica.js'
import { replyBody, tableRequest } from '../../sync/messages.js'
import { answer } from '../../sync/responder.js'
import { PUSH_SOCKET_PATH } from '../../transport/push-socket-client.js'
import type { LogThrottle } from '../log.js'
import { isLocal, signatureCharge, type SourceLimits, type Ticket } from './source-limits.js'

/** Frames that fail to parse before the socket is closed: a client that sends garbage is not kept. */
const MAX_BAD_FRAMES = 10
/** How often every socket is pinged; one that did not answer the previous ping is dropped. */
const PING_MS = 15_000
/** Frames of one socket being merged at once; past it the socket is not read until some are answered. */
const MAX_FRAMES_IN_FLIGHT = 16
/** Answers a socket may leave unread before it is dropped: a client that sends without reading is not buffered for. */
const MAX_UNREAD_BYTES = 1024 * 1024

/**
 * `GET /malla/v1/push` as a WebSocket (docs/protocol.md §10.1): a leaf's pushes to its router, each frame
 * one `POST /cgi-bin/shared-state/<type>` with `x-malla-sync: push`, answered with the corrections. Pages use
 * it because a browser's fetch() costs a few milliseconds more per request than a frame on an open socket,
 * and a signaling answer is waited for by a person.
 */
export class PushSockets {
  /**
   * Made at the first upgrade: `ws` costs a daemon ~5 MB of memory when loaded, and a router whose pages never
   * open a push socket (a Lua router's pages, `malla` CLI peers) should not pay it.
   */
  private server: Promise<WebSocketServer> | undefined
  private readonly alive = new WeakMap<WebSocket, boolean>()
  private readonly timer: ReturnType<typeof setInterval>
  private opened = 0
  private closed = false
  /** The server's sockets once it is made, for the pings. */
  private clients: ReadonlySet<WebSocket> = new Set()

  constructor(private readonly options: { replica: Replica; maxFrameBytes: number; log: Logger; limits: SourceLimits; logThrottle: LogThrottle }) {
    this.timer = setInterval(() => this.pingAll(), PING_MS)
    this.timer.unref?.()
  }

  /**
   * Takes an HTTP upgrade; answers 404 for any path but the push socket's. A browser names the page that
   * opens a WebSocket in `Origin`, and WebSockets skip CORS: only pages served by this daemon (the same
   * host and port) may open one, so a web page elsewhere cannot make a visitor's browser write to the mesh.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const pathname = (req.url ?? '/').split('?', 1)[0]
    if (pathname !== PUSH_SOCKET_PATH) return refuse(socket, '404 Not Found', 'no WebSocket here')
    const origin = req.headers.origin
    if (origin !== undefined && originHost(origin) !== req.headers.host) {
      this.warn(req.socket?.remoteAddress ?? 'unknown', 'push socket refused', { origin })
      return refuse(socket, '403 Forbidden', `pages of ${origin} may not push here`)
    }
    this.server ??= import('ws').then(({ WebSocketServer }) => {
      const server = new WebSocketServer({ noServer: true, maxPayload: this.options.maxFrameBytes, perMessageDeflate: false })
      server.on('connection', (ws, request) => this.serve(ws, request))
      this.clients = server.clients
      return server
    })
    void this.server.then(
      (server) => {
        if (this.closed || socket.destroyed) return socket.destroy()
        server.handleUpgrade(req, socket, head, (ws) => server.emit('connection', ws, req))
      },
      (e: Error) => refuse(socket, '500 Internal Server Error', `cannot load the WebSocket library: ${e.message}`),
    )
  }

  close(): void {
    this.closed = true
    clearInterval(this.timer)
    this.server?.then(
      (server) => {
        for (const ws of server.clients) ws.terminate()
        server.close()
      },
      () => {}, // never loaded: nothing to close
    )
  }

  private serve(socket: WebSocket, req: IncomingMessage): void {
    const from = req.socket?.remoteAddress ?? 'unknown'
    const local = req.socket ? isLocal(req.socket) : false
    let bad = 0
    let inFlight = 0
    // Each socket is a link of its own: what it pushes is not sent back to it.
    const source = `ws ${++this.opened}`
    this.alive.set(socket, true)
    socket.on('pong', () => this.alive.set(socket, true))
    socket.on('error', (e) => this.warn(from, 'push socket error', { error: e.message }))
    socket.on('message', (data, isBinary) => {
      // Each frame is a request: the sender's limits apply to it as to a push POST.
      let ticket: Ticket | undefined
      try {
        ticket = this.options.limits.admit(from, local)
        ticket.charge(rawLength(data))
      } catch (e) {
        ticket?.end()
        // Over its budget: the socket is closed, unread (code 1013, try again later), as an HTTP request over
        // budget is; reading on would let one socket make the daemon parse frames at any rate.
        const error = asMallaError(e)
        this.warn(from, 'push socket closed', { why: error.message })
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ id: null, error: { code: error.code, message: error.message } }))
        return socket.close(1013, 'over budget')
      }
      if (++inFlight >= MAX_FRAMES_IN_FLIGHT) socket.pause()
      void this.frame(isBinary ? undefined : data.toString(), source, ticket as Ticket).then(({ reply, id, error }) => {
        ticket?.end()
        if (inFlight-- === MAX_FRAMES_IN_FLIGHT) socket.resume()
        if (error !== undefined) {
          this.warn(from, 'push refused', { error })
          if (id === null && ++bad >= MAX_BAD_FRAMES) return socket.close(1008, 'too many bad frames')
        }
        if (socket.readyState !== socket.OPEN) return
        if (socket.bufferedAmount > MAX_UNREAD_BYTES) {
          this.warn(from, 'push socket dropped', { why: `over ${MAX_UNREAD_BYTES} bytes of answers unread` })
          return socket.terminate()
        }
        socket.send(reply)
      }).catch((e: Error) => this.options.log.error('push frame handler failed', { from, error: e.message }))
    })
  }

  private warn(from: string, message: string, fields: Record<string, unknown>): void {
    const line = this.options.logThrottle.allow(from)
    if (line.ok) this.options.log.warn(message, { from, ...fields, earlierNotLogged: line.held || undefined })
  }

  /** One frame, `{"id", "type", "entries"}`, merged into the TTL table `type`; the reply's text. Never throws. */
  private async frame(text: string | undefined, source: string, ticket: Ticket): Promise<{ reply: string; id: number | null; error?: string }> {
    let id: number | null = null
    try {
      if (text === undefined) throw new MallaError('BAD_INPUT', 'push frames are text (JSON), not binary')
      const value = parseJsonText(text, 'push frame') as { id?: unknown; type?: unknown; entries?: unknown } | null
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new MallaError('BAD_INPUT', 'a push frame is an object {"id", "type", "entries"}')
      if (!Number.isSafeInteger(value.id) || (value.id as number) < 0) throw new MallaError('BAD_INPUT', 'a push frame needs an "id": a whole number ≥ 0')
      id = value.id as number
      const type = parseTypeName(typeof value.type === 'string' ? value.type : '')
      const { reply } = await answer(this.options.replica, tableRequest('push', { flavour: 'ttl', type }, value.entries, 'push frame entries'), { source, chargeChecks: signatureCharge(ticket) })
      return { id, reply: `{"id":${id},"entries":${replyBody(reply)}}` }
    } catch (e) {
      const error = asMallaError(e)
      return { id, error: error.message, reply: JSON.stringify({ id, error: { code: error.code, message: error.message } }) }
    }
  }

  private pingAll(): void {
    for (const ws of this.clients) {
      if (this.alive.get(ws) === false) {
        ws.terminate()
        continue
      }
      this.alive.set(ws, false)
      ws.ping()
    }
  }
}

/** Bytes of a frame as ws hands it over (a Buffer, or fragments). */
function rawLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.byteLength, 0)
  return data.byteLength
}

function refuse(socket: Duplex, status: string, why: string): void {
  socket.end(`HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${why}\n`)
}

function originHost(origin: string): string | undefined {
  try {
    return new URL(origin).host
  } catch {
    return undefined // "null" (a file or a sandboxed frame) or garbage
  }
}
