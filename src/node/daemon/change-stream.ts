import type { IncomingMessage, ServerResponse } from 'node:http'
import { MallaError } from '../../core/errors.js'
import type { Logger } from '../../core/log.js'
import type { ChangeLog, LoggedChange } from '../../replica/change-log.js'

export interface ChangeStreamLimits {
  /** Feed clients at once, in all. */
  readonly maxClients: number
  /** Feed clients at once from one address (a browser's tabs, a few `malla watch`); this machine is not limited. */
  readonly maxClientsPerSource: number
  /**
   * A client whose socket has held a full buffer this long is stalled (not reading): a slow link or a large
   * change takes a moment to go through, which is not stalling.
   */
  readonly stallGraceMs: number
  /** A stalled client that has still taken nothing after this long is dropped. */
  readonly stallMs: number
  /** Bytes waiting in stalled clients' sockets, in all; past it the client found stalled now is dropped. */
  readonly maxStalledBytes: number
}

export const CHANGE_STREAM_LIMITS: ChangeStreamLimits = {
  maxClients: 512,
  maxClientsPerSource: 32,
  stallGraceMs: 5_000,
  stallMs: 60_000,
  maxStalledBytes: 32 * 1024 * 1024,
}

/** Bytes a client's socket may hold before the stream waits for it to drain. */
const HIGH_WATER = 64 * 1024
const KEEP_ALIVE_MS = 15_000

interface Client {
  readonly res: ServerResponse
  readonly source: string
  readonly wanted: ReadonlySet<string> | undefined
  /** The last change this client was given (or skipped by its filter). */
  cursor: string
  /** Its socket's buffer is full: nothing more is written until it drains. */
  waiting: boolean
  /** Bytes its socket held when it was found stalled; 0 while it is not. */
  stalledBytes: number
  timer: ReturnType<typeof setTimeout> | undefined
}

/**
 * The change feed's server side (docs/protocol.md §10). A client is only a cursor into the change log: it
 * is written what follows its cursor while its socket keeps up, and nothing while it does not, so a client
 * that stops reading holds one socket buffer, not a queue of everything since. When it reads again it
 * resumes from its cursor, or gets `reset` if the log no longer reaches back that far. A client whose buffer
 * stays full for `stallGraceMs` is stalled; one stalled for `stallMs` more, or whose buffer would take the
 * stalled total past its bound, is dropped; it may reconnect with its last cursor.
 */
export class ChangeStreams {
  private readonly clients = new Set<Client>()
  private readonly perSource = new Map<string, number>()
  private readonly frames = new WeakMap<LoggedChange, Buffer>()
  private stalledBytes = 0
  private readonly off: () => void
  private readonly keepAlive: ReturnType<typeof setInterval>

  constructor(
    private readonly changes: ChangeLog,
    private readonly log: Logger,
    private readonly limits: ChangeStreamLimits = CHANGE_STREAM_LIMITS,
  ) {
    this.off = changes.subscribe(() => {
      for (const c of this.clients) this.pump(c)
    })
    this.keepAlive = setInterval(() => {
      for (const c of this.clients) if (!c.waiting) c.res.write(': keep-alive\n\n')
    }, KEEP_ALIVE_MS)
    this.keepAlive.unref?.()
  }

  /** How many clients, and how many bytes stalled clients hold (for tests and benchmarks). */
  stats(): { clients: number; stalledBytes: number } {
    return { clients: this.clients.size, stalledBytes: this.stalledBytes }
  }

  /** Serves one `GET /malla/v1/events`; throws BUSY (before answering) when there are too many clients. */
  serve(req: IncomingMessage, res: ServerResponse, params: URLSearchParams, source: string, local: boolean): void {
    const fromSource = this.perSource.get(source) ?? 0
    if (this.clients.size >= this.limits.maxClients || (!local && fromSource >= this.limits.maxClientsPerSource)) {
      throw new MallaError('BUSY', `too many feed clients (${fromSource} from ${source}, ${this.clients.size} in all); retry later`)
    }
    const types = params.get('types')?.split(',').filter(Boolean)
    const since = params.get('since') ?? req.headers['last-event-id']
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
    req.socket?.setTimeout(0)
    const client: Client = { res, source, wanted: types ? new Set(types) : undefined, cursor: this.changes.cursor, waiting: false, stalledBytes: 0, timer: undefined }
    if (typeof since === 'string' && since !== '' && this.changes.since(since).kind === 'replay') {
      client.cursor = since
    } else {
      const event = typeof since === 'string' && since !== '' ? 'reset' : 'hello'
      res.write(`id: ${client.cursor}\nevent: ${event}\ndata: ${JSON.stringify({ cursor: client.cursor })}\n\n`)
    }
    this.clients.add(client)
    this.perSource.set(source, fromSource + 1)
    res.on('drain', () => {
      this.unwait(client)
      this.pump(client)
    })
    res.on('close', () => this.remove(client))
    this.pump(client)
  }

  close(): void {
    this.off()
    clearInterval(this.keepAlive)
    for (const c of [...this.clients]) c.res.destroy()
  }

  /** Writes what follows the client's cursor while its socket keeps up. */
  private pump(c: Client): void {
    if (c.waiting || !this.clients.has(c) || c.res.destroyed) return
    const replay = this.changes.since(c.cursor)
    if (replay.kind === 'reset') {
      c.cursor = replay.cursor
      c.res.write(`id: ${c.cursor}\nevent: reset\ndata: ${JSON.stringify({ cursor: c.cursor })}\n\n`)
    } else {
      for (const change of replay.changes) {
        c.cursor = change.cursor
        if (c.wanted && !c.wanted.has(change.type)) continue
        c.res.write(this.frame(change))
        if (c.res.writableLength >= HIGH_WATER) break
      }
    }
    if (c.res.writableLength >= HIGH_WATER) {
      c.waiting = true
      c.timer = setTimeout(() => this.stall(c), this.limits.stallGraceMs)
    }
  }

  /** One change as an event, encoded once and shared by every client's socket. */
  private frame(change: LoggedChange): Buffer {
    let frame = this.frames.get(change)
    if (frame === undefined) {
      frame = Buffer.from(`id: ${change.cursor}\nevent: change\ndata: ${change.json}\n\n`)
      this.frames.set(change, frame)
    }
    return frame
  }

  /** Still full after the grace: the client is not reading. */
  private stall(c: Client): void {
    c.stalledBytes = c.res.writableLength
    this.stalledBytes += c.stalledBytes
    if (this.stalledBytes > this.limits.maxStalledBytes) return this.drop(c, `stalled clients hold over ${this.limits.maxStalledBytes} bytes`)
    c.timer = setTimeout(() => this.drop(c, `took nothing for ${this.limits.stallGraceMs + this.limits.stallMs} ms`), this.limits.stallMs)
  }

  private unwait(c: Client): void {
    this.stalledBytes -= c.stalledBytes
    c.stalledBytes = 0
    c.waiting = false
    clearTimeout(c.timer)
    c.timer = undefined
  }

  private drop(c: Client, why: string): void {
    this.log.warn('feed client dropped', { from: c.source, why })
    c.res.destroy()
    this.remove(c)
  }

  private remove(c: Client): void {
    if (!this.clients.delete(c)) return
    this.unwait(c)
    const n = (this.perSource.get(c.source) ?? 1) - 1
    if (n > 0) this.perSource.set(c.source, n)
    else this.perSource.delete(c.source)
  }
}
