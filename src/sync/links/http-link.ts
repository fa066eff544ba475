import { isMallaError, MallaError } from '../../core/errors.js'
import { FLAVOURS } from '../../core/flavours.js'
import { serializeTable } from '../../core/schema.js'
import { baseAddress } from '../../transport/address.js'
import type { HttpPoster } from '../../transport/http-poster.js'
import { DEFAULT_MAX_REPLY_BYTES, DEFAULT_TIMEOUT_MS, exchangeTable } from '../full-table-sync.js'
import { reconcileBody, type SyncRequest } from '../messages.js'
import { decodeName } from '../neighbour-name.js'
import { endpointUrl, httpSourceId, MALLA_HEADER, MALLA_NAME_HEADER, RECONCILE_PATH, trimBase } from './http-wire.js'
import { NotMallaError, type LinkTraffic, type ReceivedReply, type SyncLink, type Speaks } from './link.js'

export interface HttpLinkOptions {
  /** The neighbour's base URL (`http://10.13.0.1`, `http://[fe80::1%25br-lan]:8080`). */
  readonly base: string
  readonly poster: HttpPoster
  /** Per request, connect to last byte; LibreMesh's uclient-fetch uses 3 s. */
  readonly timeoutMs?: number
  readonly maxReplyBytes?: number
  /** This node's name, sent with every request so the neighbour knows where a change came from. */
  readonly ownName?: string
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * A neighbour over HTTP: whole tables and pushes go to its LibreMesh endpoint (what any LibreMesh router
 * answers), reconciliation to `/malla/v1/reconcile` (malla only). What it speaks is learnt from its answers'
 * capability header; a failure forgets it, so the next exchange learns it again.
 */
export class HttpLink implements SyncLink {
  speaks: Speaks | undefined
  name: string | undefined
  private readonly totals = { exchanges: 0, bytesSent: 0, bytesReceived: 0 }
  private readonly address: string

  constructor(private readonly options: HttpLinkOptions) {
    this.address = baseAddress(options.base) ?? options.base
  }

  /**
   * The sender identity its requests to us carry (httpSourceId): its address and name. A LibreMesh router sends
   * no name; until a far end is known to be one, or has said its name, the id matches no request at all, so an
   * anonymous client on the same address (a CLI on the same machine) is never taken for this neighbour.
   */
  get id(): string {
    if (this.name !== undefined || this.speaks === 'libremesh') return httpSourceId(this.address, this.name)
    return `http ${this.address} ? ${this.options.base}`
  }

  get label(): string {
    return this.options.base
  }

  get traffic(): LinkTraffic {
    return { ...this.totals }
  }

  async request(request: SyncRequest): Promise<ReceivedReply> {
    try {
      return request.t === 'table' || request.t === 'push' ? await this.postTable(request) : await this.reconcile(request)
    } catch (e) {
      if (!(e instanceof NotMallaError)) this.speaks = undefined
      throw e
    }
  }

  close(): void {}

  private async postTable(request: Extract<SyncRequest, { t: 'table' | 'push' }>): Promise<ReceivedReply> {
    const url = endpointUrl(this.options.base, request.ref)
    const reply = await exchangeTable(url, serializeTable(request.entries), this.exchangeOptions(), { push: request.t === 'push', ...(this.options.ownName ? { from: this.options.ownName } : {}) })
    this.count(reply.bytesSent, reply.bytesReceived)
    this.speaks = reply.malla ? 'malla' : 'libremesh'
    if (reply.name) this.name = reply.name
    if (reply.kind === 'empty') return { t: 'empty', reason: reply.reason }
    try {
      return { t: request.t === 'push' ? 'corrections' : 'table', entries: FLAVOURS[request.ref.flavour].parse(reply.value, `answer from ${url}`) }
    } catch (e) {
      if (isMallaError(e, 'BAD_INPUT')) return { t: 'empty', reason: e.message }
      throw e
    }
  }

  private async reconcile(request: Extract<SyncRequest, { t: 'summary' | 'exchange' }>): Promise<ReceivedReply> {
    const url = `${trimBase(this.options.base)}${RECONCILE_PATH}`
    const body = encoder.encode(reconcileBody(request))
    const reply = await this.options.poster.post({
      url,
      body,
      headers: { 'content-type': 'application/json', ...(this.options.ownName ? { [MALLA_NAME_HEADER]: encodeURIComponent(this.options.ownName) } : {}) },
      timeoutMs: this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      maxReplyBytes: this.options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES,
    })
    // A LibreMesh router answers a path it does not know with an error page or an empty 200, never with this.
    if (reply.headers.get(MALLA_HEADER) === undefined) {
      this.speaks = 'libremesh'
      throw new NotMallaError(url)
    }
    const text = decoder.decode(reply.body)
    if (reply.status !== 200) throw new MallaError('PEER', `POST ${url} answered HTTP ${reply.status}: ${text.slice(0, 300).trim()}`)
    this.count(body.byteLength, reply.body.byteLength)
    this.speaks = 'malla'
    this.name = decodeName(reply.headers.get(MALLA_NAME_HEADER)) ?? this.name
    let value: { entries?: unknown; more?: unknown } | null
    try {
      value = JSON.parse(text) as typeof value
    } catch {
      throw new MallaError('PEER', `POST ${url} answered something that is not JSON`)
    }
    if (request.t === 'summary') return { t: 'differing', answer: value }
    return { t: 'entries', entries: FLAVOURS[request.ref.flavour].parse(value?.entries ?? {}, `reconcile answer from ${url}`), more: value?.more === true }
  }

  private exchangeOptions() {
    return { poster: this.options.poster, timeoutMs: this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS, maxReplyBytes: this.options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES }
  }

  private count(sent: number, received: number): void {
    this.totals.exchanges++
    this.totals.bytesSent += sent
    this.totals.bytesReceived += received
  }
}
