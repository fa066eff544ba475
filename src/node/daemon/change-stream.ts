import type { IncomingMessage, ServerResponse } from 'node:http'
import { MallaError } from '../../core/errors.js'
import type { Logger } from '../../core/log.js'
import type { ChangeLog, LoggedChange } from '../../replica/change-log.js'

export interface ChangeStreamLimits {
  /** Feed clients at once, in all. */
  readonly maxClients: number
  /** Feed clients at once from one address (a browser's tabs, a few `malla watch`); this machine is not limited. */
  readonly maxClientsPerSource: number
  /** A client whose socket has not taken what was written for this long, while changes wait, is dropped. */
  readonly stallMs: number
  /** Bytes written but not yet taken by stalled clients' sockets, in all; past it the client stalling now is dropped. */
  readonly maxStalledBytes: number
}

export const CHANGE_STREAM_LIMITS: ChangeStreamLimits = {
  maxClients: 512,
  maxClientsPerSource: 32,
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
  /** Bytes its socket held when it stopped taking them; 0 while it keeps up. */
  stalledBytes: number
  stallTimer: ReturnType<typeof setTimeout> | undefined
}

/**
 * The change feed's server side (docs/protocol.md §10). A client is only a cursor into the change log: it
 * is written what follows its cursor while its socket keeps up, and nothing while it does not, so a client
 * that stops reading holds one socket buffer, not a queue of everything since. When it reads again it
 * resumes from its cursor, or gets `reset` if the log no longer reaches back that far. A client stalled for
 * `stallMs`, or whose buffer would take the stalled total past its bound, is dropped; it may reconnect
 * with its last cursor.
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
      for (const c of this.clients) if (c.stalledBytes === 0) c.res.write(': keep-alive\n\n')
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
    const client: Client = { res, source, wanted: types ? new Set(types) : undefined, cursor: this.changes.cursor, stalledBytes: 0, stallTimer: undefined }
    if (typeof since === 'string' && since !== '' && this.changes.since(since).kind === 'replay') {
      client.cursor = since
    } else {
      const event = typeof since === 'string' && since !== '' ? 'reset' : 'hello'
      res.write(`id: ${client.cursor}\nevent: ${event}\ndata: ${JSON.stringify({ cursor: client.cursor })}\n\n`)
    }
    this.clients.add(client)
    this.perSource.set(source, fromSource + 1)
    res.on('drain', () => {
      this.unstall(client)
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
    if (c.stalledBytes > 0 || !this.clients.has(c) || c.res.destroyed) return
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
    if (c.res.writableLength >= HIGH_WATER) this.stall(c)
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

  private stall(c: Client): void {
    c.stalledBytes = c.res.writableLength
    this.stalledBytes += c.stalledBytes
    if (this.stalledBytes > this.limits.maxStalledBytes) return this.drop(c, `stalled clients hold over ${this.limits.maxStalledBytes} bytes`)
    c.stallTimer = setTimeout(() => this.drop(c, `took nothing for ${this.limits.stallMs} ms`), this.limits.stallMs)
  }

  private unstall(c: Client): void {
    this.stalledBytes -= c.stalledBytes
    c.stalledBytes = 0
    clearTimeout(c.stallTimer)
    c.stallTimer = undefined
  }

  private drop(c: Client, why: string): void {
    this.log.warn('feed client dropped', { from: c.source, why })
    c.res.destroy()
    this.remove(c)
  }

  private remove(c: Client): void {
    if (!this.clients.delete(c)) return
    this.unstall(c)
    const n = (this.perSource.get(c.source) ?? 1) - 1
    if (n > 0) this.perSource.set(c.source, n)
    else this.perSource.delete(c.source)
  }
}
