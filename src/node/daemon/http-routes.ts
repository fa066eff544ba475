import type { IncomingMessage, ServerResponse } from 'node:http'
import { gzipSync } from 'node:zlib'
import { isMallaError, MallaError, type ErrorCode } from '../../core/errors.js'
import type { Logger } from '../../core/log.js'
import {
  parseInsertValues,
  parseJsonText,
  parseKeyList,
  parseMultiWriterTable,
  parseTable,
  parseTtl,
  parseTypeName,
} from '../../core/schema.js'
import type { Flavour } from '../../core/types.js'
import type { Replica } from '../../replica/replica.js'
import type { TableRef } from '../../storage/table-store.js'
import type { SyncOutcome } from '../../sync/full-table-sync.js'
import { readBody } from './http-body.js'
import { renderTablesPage } from './tables-page.js'

/** What the routes need from the daemon. */
export interface RouteContext {
  readonly replica: Replica
  readonly name: string
  readonly maxBodyBytes: number
  readonly log: Logger
  peers(): readonly string[]
  /** Syncs one table now with the given endpoint URLs, or with every peer when none are given. */
  syncNow(ref: TableRef, urls?: readonly string[]): Promise<SyncOutcome[]>
}

const STATUS: Record<ErrorCode, number> = {
  BAD_INPUT: 400,
  NOT_FOUND: 404,
  TOO_LARGE: 413,
  LOCK_FAILED: 503,
  STORAGE: 507,
  PEER: 502,
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
  try {
    const libremesh = LIBREMESH_PATH.exec(pathname)
    if (libremesh) return await libremeshEndpoint(ctx, req, res, libremesh[1] === 'shared-state' ? 'ttl' : 'multiwriter', libremesh[2] ?? '', query, started)
    const api = API_PATH.exec(pathname)
    if (api) return await apiEndpoint(ctx, req, res, api[1] === 'tables' ? 'ttl' : 'multiwriter', api[2] ?? '', api[3], params)
    if (pathname === '/malla/v1/tables') {
      requireMethod(req, 'GET')
      const refs = await ctx.replica.list()
      return sendJson(res, 200, await Promise.all(refs.map(async (r) => ({ ...r, size: (await ctx.replica.read(r)).table.size }))))
    }
    if (pathname === '/malla/v1/info') {
      requireMethod(req, 'GET')
      return sendJson(res, 200, { name: ctx.name, peers: ctx.peers() })
    }
    if (pathname === '/malla/v1/events') {
      requireMethod(req, 'GET')
      return changeStream(ctx, req, res, params)
    }
    if (pathname === '/' || pathname === '/index.html') {
      requireMethod(req, 'GET')
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
      res.end(renderTablesPage(ctx.name))
      return
    }
    throw new MallaError('NOT_FOUND', `no such path: ${pathname}`)
  } catch (e) {
    sendError(ctx, req, res, e)
  }
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
): Promise<void> {
  requireMethod(req, 'POST')
  const type = parseTypeName(rawType)
  const gzipped = query.includes('gzip')
  const text = await readBody(req, ctx.maxBodyBytes, gzipped)
  // An empty body asks for our table without offering anything (LibreMesh merges "nothing" too).
  const value = text.trim() === '' ? {} : parseJsonText(text, 'body')
  const snapshot =
    flavour === 'ttl'
      ? await ctx.replica.merge(type, parseTable(value, 'body'))
      : await ctx.replica.mergeMultiWriter(type, parseMultiWriterTable(value, 'body'))
  const body = Buffer.from(snapshot.text + '\n')
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(gzipped ? gzipSync(body) : body)
  ctx.log.debug('served sync', { flavour, type, from: req.socket.remoteAddress, changed: snapshot.changed.length, ms: Date.now() - started })
}

async function apiEndpoint(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  flavour: Flavour,
  rawType: string,
  action: string | undefined,
  params: URLSearchParams,
): Promise<void> {
  const type = parseTypeName(rawType)
  const ref: TableRef = { flavour, type }
  if (action === undefined) {
    requireMethod(req, 'GET')
    return sendText(res, 200, (await ctx.replica.read(ref)).text)
  }
  requireMethod(req, 'POST')
  const input = async () => {
    const text = await readBody(req, ctx.maxBodyBytes, false)
    return text.trim() === '' ? undefined : parseJsonText(text, 'body')
  }
  const ttl = params.has('ttl') ? parseTtl(params.get('ttl')) : undefined
  switch (action) {
    case 'insert': {
      const values = parseInsertValues((await input()) ?? {}, 'body')
      const snap = flavour === 'ttl' ? await ctx.replica.insert(type, values, ttl) : await ctx.replica.insertMultiWriter(type, values)
      return sendText(res, 200, snap.text)
    }
    case 'remove': {
      if (flavour !== 'ttl') throw new MallaError('BAD_INPUT', 'multi-writer tables have no remove (as in LibreMesh)')
      return sendText(res, 200, (await ctx.replica.remove(type, parseKeyList((await input()) ?? [], 'body'), ttl)).text)
    }
    case 'bleach': {
      if (flavour !== 'ttl') throw new MallaError('BAD_INPUT', 'multi-writer tables are never bleached (as in LibreMesh)')
      await input()
      return sendText(res, 200, (await ctx.replica.bleach(type)).text)
    }
    default: {
      const urls = (await input()) ?? []
      if (!Array.isArray(urls) || !urls.every((u) => typeof u === 'string' && /^https?:\/\//.test(u))) {
        throw new MallaError('BAD_INPUT', 'body must be a JSON array of endpoint URLs (http://...)')
      }
      const outcomes = await ctx.syncNow(ref, urls.length > 0 ? urls : undefined)
      return sendJson(res, 200, outcomes)
    }
  }
}

function changeStream(ctx: RouteContext, req: IncomingMessage, res: ServerResponse, params: URLSearchParams): void {
  const wanted = params.get('types')?.split(',').filter(Boolean)
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
  res.write(': malla change stream\n\n')
  const off = ctx.replica.on('change', (event) => {
    if (wanted && !wanted.includes(event.type)) return
    res.write(`event: change\ndata: ${JSON.stringify(event)}\n\n`)
  })
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000)
  req.socket.setTimeout(0)
  res.on('close', () => {
    off()
    clearInterval(keepAlive)
  })
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  sendText(res, status, JSON.stringify(value))
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(text + '\n')
}

function sendError(ctx: RouteContext, req: IncomingMessage, res: ServerResponse, e: unknown): void {
  const error = isMallaError(e) ? e : new MallaError('STORAGE', `internal error: ${(e as Error).message}`, { cause: e })
  const status = error instanceof MethodNotAllowed ? 405 : STATUS[error.code]
  const level = status >= 500 ? 'error' : 'warn'
  ctx.log[level]('request refused', { method: req.method, url: req.url, from: req.socket.remoteAddress, status, error: error.message })
  if (res.headersSent) {
    res.destroy()
    return
  }
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (error instanceof MethodNotAllowed) headers.allow = error.allow
  // The body may not have been read (too large, say): close rather than let a client keep sending it.
  if (!req.complete) headers.connection = 'close'
  res.writeHead(status, headers)
  res.end(JSON.stringify({ error: { code: error.code, message: error.message } }) + '\n')
  if (!req.complete) req.resume()
}
