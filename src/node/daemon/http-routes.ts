import type { IncomingMessage, ServerResponse } from 'node:http'
import { gzipSync } from 'node:zlib'
import { asMallaError, isMallaError, MallaError, type ErrorCode } from '../../core/errors.js'
import type { Logger } from '../../core/log.js'
import {
  parseInsertValues,
  parseJsonText,
  parseKeyList,
  parseTtl,
  isTypeName,
  parseTypeName,
  serializeTable,
} from '../../core/schema.js'
import type { Flavour } from '../../core/types.js'
import type { ChangeStreams } from './change-stream.js'
import { normalizeAddress } from '../../transport/address.js'
import { isLocal, signatureCharge, type SourceLimits, type Ticket } from './source-limits.js'
import type { LogThrottle } from '../log.js'
import type { Replica } from '../../replica/replica.js'
import type { TableRef } from '../../storage/table-store.js'
import type { SyncOutcome } from '../../sync/full-table-sync.js'
import { httpSourceId, MALLA_HEADER, MALLA_NAME_HEADER, MALLA_PROTOCOL_VERSION, MALLA_SYNC_HEADER } from '../../sync/links/http-wire.js'
import type { NeighbourInfo, Traffic } from '../../sync/neighbour-sync.js'
import { reconcileRequest, replyBody, tableRequest, type SyncRequest } from '../../sync/messages.js'
import { answer } from '../../sync/responder.js'
import { decodeName } from '../../sync/neighbour-name.js'
import type { WorkBudget } from '../../sync/work-budget.js'
import { isBundleFile, serveBundleFile, type BrowserBundle } from './browser-bundle.js'
import { readBody } from './http-body.js'
import type { StunInfo } from './stun-responder.js'
import { renderRoomPage } from './room-page.js'
import { renderTablesPage } from './tables-page.js'
import { isWebPath, serveWebFile, type WebApp } from './web-app.js'

/** What the routes need from the daemon. */
export interface RouteContext {
  readonly replica: Replica
  readonly name: string
  /** Work each neighbour may ask for (reconciliation). */
  readonly budget: WorkBudget
  readonly maxBodyBytes: number
  readonly log: Logger
  /** What the daemon knows of each neighbour. */
  neighbours(): readonly NeighbourInfo[]
  /** Bytes its own sync exchanges carried (for benchmarks and `malla peers`). */
  traffic(): Traffic
  /** A malla node sent a sync request from `address` with its name: a neighbour there is up. */
  heard?(address: string, name: string): void
  /** Syncs one table now with the given endpoint URLs, or with every peer when none are given. */
  syncNow(ref: TableRef, urls?: readonly string[]): Promise<SyncOutcome[]>
  /** The page bundle served at `/malla.js`; absent or incomplete when it was not built. */
  readonly bundle?: BrowserBundle
  /** The web app served at `/`; absent or empty when it was not built. */
  readonly web?: WebApp
  /** The STUN responder's port, for pages' `iceServers`; undefined when it is off or failed to start. */
  stun?(): StunInfo | undefined
  /** The change feed's clients. */
  readonly streams: ChangeStreams
  /** Rate and size limits per sending address. */
  readonly limits: SourceLimits
  /** Bounds the lines refused requests write, per sender. */
  readonly logThrottle: LogThrottle
  /** Someone read this table (or followed it on the feed): it is synced with every neighbour from now on (WantedTables). */
  asked?(ref: TableRef): void
  /** Whether this address, not this machine's, may use the operator's verbs (insert, remove, bleach, sync): none by default. */
  mayAdminister(address: string): boolean
}

const STATUS: Record<ErrorCode, number> = {
  BAD_INPUT: 400,
  NOT_FOUND: 404,
  TOO_LARGE: 413,
  LOCK_FAILED: 503,
  STORAGE: 507,
  PEER: 502,
  BUSY: 429,
  FORBIDDEN: 403,
  INTERNAL: 500,
}

const LIBREMESH_PATH = /^\/cgi-bin\/(shared-state|shared-state-multiwriter)\/([^/]*)$/
const API_PATH = /^\/malla\/v1\/(tables|multiwriter)\/([^/]+)(?:\/(insert|remove|bleach|sync))?$/

/**
 * The daemon's HTTP surface:
 * - `POST /cgi-bin/shared-state/<type>` and `/cgi-bin/shared-state-multiwriter/<type>`: LibreMesh's endpoint
 *   (body: the sender's table; answer: ours after merging it; `?gzip` compresses both).
 * - `/malla/v1/...`: what the CLI's `--url` mode uses (get, insert, remove, bleach, sync), and the live page.
 * Bad input gets a 4xx JSON error and changes nothing.
 */
export async function handleRequest(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = Date.now()
  const [pathname = '/', query = ''] = (req.url ?? '/').split('?', 2)
  const params = new URLSearchParams(query)
  // Read off the socket once: after an answer the request may be detached from it (req.socket is then null).
  const caller: Caller = { address: req.socket?.remoteAddress ?? 'unknown', local: req.socket ? isLocal(req.socket) : false, via: req.socket?.localAddress ?? '' }
  const source = caller.address
  let ticket: Ticket | undefined
  try {
    ticket = ctx.limits.admit(source, caller.local)
    res.on('close', () => ticket?.end())
    const libremesh = LIBREMESH_PATH.exec(pathname)
    if (libremesh) return await libremeshEndpoint(ctx, req, res, libremesh[1] === 'shared-state' ? 'ttl' : 'multiwriter', libremesh[2] ?? '', query, started, ticket, caller)
    const api = API_PATH.exec(pathname)
    if (api) return await apiEndpoint(ctx, req, res, api[1] === 'tables' ? 'ttl' : 'multiwriter', api[2] ?? '', api[3], params, ticket, caller)
    if (pathname === '/malla/v1/tables') {
      requireMethod(req, 'GET')
      const refs = await ctx.replica.list()
      return sendJson(res, 200, await Promise.all(refs.map(async (r) => ({ ...r, size: (await ctx.replica.read(r)).table.size }))))
    }
    if (pathname === '/malla/v1/reconcile') {
      requireMethod(req, 'POST')
      return await reconcileEndpoint(ctx, req, res, ticket, caller)
    }
    if (pathname === '/malla/v1/info') {
      requireMethod(req, 'GET')
      // `via`: the address this request reached us at. A page that knows its router only by a name
      // (thisnode.info) gets an address for its STUN server, which browsers resolve apart from pages.
      const via = caller.via.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '').replace(/%.*$/, '')
      return sendJson(res, 200, { name: ctx.name, via, neighbours: ctx.neighbours(), traffic: ctx.traffic(), stun: ctx.stun?.() ?? null })
    }
    const file = pathname.slice(1)
    if (isBundleFile(file)) {
      requireMethod(req, 'GET')
      return serveBundleFile(ctx.bundle, file, req, res)
    }
    if (pathname === '/malla/v1/events') {
      requireMethod(req, 'GET')
      // A feed lasts: it is bounded by the feed's own limits, not counted as a request in progress.
      ticket.end()
      for (const type of params.get('types')?.split(',').slice(0, 16) ?? []) if (isTypeName(type)) ctx.asked?.({ flavour: 'ttl', type })
      return ctx.streams.serve(req, res, params, source, caller.local)
    }
    if (pathname === '/debug/room') {
      requireMethod(req, 'GET')
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
      res.end(renderRoomPage(ctx.name))
      return
    }
    if (pathname === '/debug/' || pathname === '/debug/tables') {
      requireMethod(req, 'GET')
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
      res.end(renderTablesPage(ctx.name))
      return
    }
    if (isWebPath(ctx.web, pathname)) {
      if (req.method !== 'HEAD') requireMethod(req, 'GET')
      return serveWebFile(ctx.web, pathname, req, res)
    }
    throw new MallaError('NOT_FOUND', `no such path: ${pathname}`)
  } catch (e) {
    sendError(ctx, req, res, e, caller)
  }
}

/** Who sent a request, as its socket said when it arrived. */
interface Caller {
  readonly address: string
  /** From this machine (isLocal). */
  readonly local: boolean
  /** Our address it reached. */
  readonly via: string
}

class MethodNotAllowed extends MallaError {
  constructor(readonly allow: string) {
    super('BAD_INPUT', `method not allowed here; use ${allow}`)
  }
}

function requireMethod(req: IncomingMessage, method: 'GET' | 'POST'): void {
  if (req.method !== method) throw new MethodNotAllowed(method)
}

async function libremeshEndpoint(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  flavour: Flavour,
  rawType: string,
  query: string,
  started: number,
  ticket: Ticket,
  caller: Caller,
): Promise<void> {
  requireMethod(req, 'POST')
  const type = parseTypeName(rawType)
  const gzipped = query.includes('gzip')
  const received = await readBody(req, ctx.maxBodyBytes, gzipped, ticket.charge, TOO_LARGE_ADVICE)
  // An empty body asks for our table without offering anything (LibreMesh merges "nothing" too).
  const value = received.trim() === '' ? {} : parseJsonText(received, 'body')
  // A malla push gets only our corrections: our copy of each key sent wherever it is not the copy sent.
  const push = req.headers[MALLA_SYNC_HEADER] === 'push'
  const request = tableRequest(push ? 'push' : 'table', { flavour, type }, value, 'body')
  const { reply, changed } = await answer(ctx.replica, request, { source: sourceOf(ctx, req, caller), chargeChecks: signatureCharge(ticket) })
  const body = Buffer.from(replyBody(reply) + '\n')
  ticket.debit(body.byteLength)
  res.writeHead(200, { 'content-type': 'application/json', ...mallaHeaders(ctx) })
  res.end(gzipped ? gzipSync(body) : body)
  ctx.log.debug(push ? 'served push' : 'served sync', { flavour, type, from: caller.address, keys: request.entries.size, changed: changed.length, ms: Date.now() - started })
}

/**
 * The link a request came from, for ChangeEvent.sources: its address, and the name a malla node sends. A name
 * also tells the daemon that the neighbour at that address is up (RouteContext.heard).
 */
function sourceOf(ctx: RouteContext, req: IncomingMessage, caller: Caller): string {
  const header = req.headers[MALLA_NAME_HEADER]
  const name = typeof header === 'string' ? decodeName(header) : undefined
  if (name !== undefined) ctx.heard?.(caller.address, name)
  return httpSourceId(caller.address, name)
}

/**
 * Delta anti-entropy between malla nodes (src/sync/reconcile.ts). Every request is charged to the asking
 * address's work budget; bad input is charged a penalty, so garbage soon gets 429 instead of more work.
 */
async function reconcileEndpoint(ctx: RouteContext, req: IncomingMessage, res: ServerResponse, ticket: Ticket, caller: Caller): Promise<void> {
  const who = caller.address
  ctx.budget.charge(who, 1)
  let request: SyncRequest
  try {
    const text = await readBody(req, ctx.maxBodyBytes, false, ticket.charge)
    request = reconcileRequest(parseJsonText(text, 'body'))
  } catch (e) {
    if (isMallaError(e, 'BAD_INPUT') || isMallaError(e, 'TOO_LARGE')) ctx.budget.penalize(who, BAD_INPUT_PENALTY)
    throw e
  }
  const { reply, changed } = await answer(ctx.replica, request, { source: sourceOf(ctx, req, caller), charge: (units) => ctx.budget.charge(who, units), chargeChecks: signatureCharge(ticket) })
  const text = replyBody(reply)
  ticket.debit(text.length)
  sendText(res, 200, text, mallaHeaders(ctx))
  ctx.log.debug('served reconcile', { type: request.ref.type, round: request.t, from: who, changed: changed.length })
}

/**
 * Said with every 413 on the LibreMesh endpoint: between malla nodes no body ever holds a whole table
 * (they reconcile), so a table this large comes from a LibreMesh router, whose only sync is the whole table.
 */
const TOO_LARGE_ADVICE = 'a LibreMesh router posts its whole table: raise --max-body on this daemon to take tables this large'

/** Endpoints one sync request may name: each costs a request with a timeout, and they run together. */
const MAX_SYNC_URLS = 64

/** Work units charged for a request that fails validation. */
const BAD_INPUT_PENALTY = 100_000

async function apiEndpoint(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  flavour: Flavour,
  rawType: string,
  action: string | undefined,
  params: URLSearchParams,
  ticket: Ticket,
  caller: Caller,
): Promise<void> {
  const type = parseTypeName(rawType)
  const ref: TableRef = { flavour, type }
  if (action === undefined) {
    requireMethod(req, 'GET')
    ctx.asked?.(ref)
    const text = (await ctx.replica.read(ref)).text
    ticket.debit(text.length)
    return sendText(res, 200, text)
  }
  requireMethod(req, 'POST')
  const source = caller.address
  if (!caller.local && !ctx.mayAdminister(source)) {
    const address = normalizeAddress(source)
    throw new MallaError('FORBIDDEN', `${action} is an operator's verb, taken only from this machine; start the daemon with --api-allow ${address}/${address.includes(':') ? 128 : 32} to take it from ${address}`)
  }
  const input = async () => {
    const text = await readBody(req, ctx.maxBodyBytes, false, ticket.charge)
    return text.trim() === '' ? undefined : parseJsonText(text, 'body')
  }
  const ttl = params.has('ttl') ? parseTtl(params.get('ttl')) : undefined
  switch (action) {
    case 'insert': {
      const body = await input()
      const values = parseInsertValues(body === undefined ? {} : body, 'body')
      const snap = flavour === 'ttl' ? await ctx.replica.insert(type, values, ttl) : await ctx.replica.insertMultiWriter(type, values)
      return sendText(res, 200, entriesOf(snap.table, values.map(([k]) => k)))
    }
    case 'remove': {
      if (flavour !== 'ttl') throw new MallaError('BAD_INPUT', 'multi-writer tables have no remove (as in LibreMesh)')
      const body = await input()
      const keys = parseKeyList(body === undefined ? [] : body, 'body')
      return sendText(res, 200, entriesOf((await ctx.replica.remove(type, keys, ttl)).table, keys))
    }
    case 'bleach': {
      if (flavour !== 'ttl') throw new MallaError('BAD_INPUT', 'multi-writer tables are never bleached (as in LibreMesh)')
      await input()
      return sendText(res, 200, (await ctx.replica.bleach(type)).text)
    }
    default: {
      const body = await input()
      const urls = body === undefined ? [] : body
      if (!Array.isArray(urls) || urls.length > MAX_SYNC_URLS || !urls.every((u) => typeof u === 'string' && /^https?:\/\//.test(u))) {
        throw new MallaError('BAD_INPUT', `body must be a JSON array of at most ${MAX_SYNC_URLS} endpoint URLs (http://...)`)
      }
      const outcomes = await ctx.syncNow(ref, urls.length > 0 ? urls : undefined)
      return sendJson(res, 200, outcomes)
    }
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  sendText(res, status, JSON.stringify(value), headers)
}

function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(text + '\n')
}

/** The capability headers every answer of the sync protocol carries (§9.1). */
function mallaHeaders(ctx: RouteContext): Record<string, string> {
  return { [MALLA_HEADER]: MALLA_PROTOCOL_VERSION, [MALLA_NAME_HEADER]: encodeURIComponent(ctx.name) }
}

function sendError(ctx: RouteContext, req: IncomingMessage, res: ServerResponse, e: unknown, caller: Caller): void {
  const error = asMallaError(e)
  const status = error instanceof MethodNotAllowed ? 405 : STATUS[error.code]
  // The daemon's own trouble (disk, lock, a bug) is always an error line; what a sender got wrong is a warning,
  // and no sender can make the daemon write more than a few of those a minute.
  const ours = error.code === 'STORAGE' || error.code === 'LOCK_FAILED' || error.code === 'INTERNAL'
  // A missing page or a wrong method is what browsers and scanners do all day: not worth a line by default.
  const level = ours ? 'error' : error.code === 'NOT_FOUND' || error instanceof MethodNotAllowed ? 'debug' : 'warn'
  const from = caller.address
  const line = ours ? { ok: true as const, held: 0 } : ctx.logThrottle.allow(from)
  if (line.ok) ctx.log[level]('request refused', { method: req.method, url: req.url?.slice(0, 200), from, status, error: error.message.slice(0, 500), earlierNotLogged: line.held || undefined })
  if (res.headersSent) {
    res.destroy()
    return
  }
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (error instanceof MethodNotAllowed) headers.allow = error.allow
  if (error.code === 'BUSY') headers['retry-after'] = '1'
  // The body may not have been read (too large, say): close rather than let a client keep sending it.
  if (!req.complete) headers.connection = 'close'
  res.writeHead(status, headers)
  res.end(JSON.stringify({ error: { code: error.code, message: error.message } }) + '\n')
  if (!req.complete) req.resume()
}

/**
 * The answer to an insert or remove: the entries of the keys it named, as stored now. Not the whole table:
 * a one-key write to a 10,000-entry table would otherwise answer megabytes (LibreMesh's CLI prints nothing).
 */
function entriesOf(table: ReadonlyMap<string, object>, keys: readonly string[]): string {
  const out = new Map<string, object>()
  for (const k of keys) {
    const entry = table.get(k)
    if (entry !== undefined) out.set(k, entry)
  }
  return serializeTable(out)
}
