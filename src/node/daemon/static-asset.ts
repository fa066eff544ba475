import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { gzipSync } from 'node:zlib'

/** A file served from memory: read once at start, with its validator and its compressed form made then too. */
export interface StaticAsset {
  readonly body: Buffer
  /** Compressed once at start (a router's CPU is small, and the file never changes while it runs); none for formats already compressed. */
  readonly gzip: Buffer | undefined
  readonly etag: string
  readonly contentType: string
}

export function staticAsset(body: Buffer, contentType: string, compress = true): StaticAsset {
  return {
    body,
    gzip: compress ? gzipSync(body, { level: 9 }) : undefined,
    etag: createHash('sha256').update(body).digest('base64url').slice(0, 22),
    contentType,
  }
}

/**
 * Answers a GET (or HEAD) for `asset`: gzipped when the client takes it, 304 when its validator matches.
 * `headers` adds the caller's own (cache-control, CORS, ...).
 */
export function sendAsset(asset: StaticAsset, headers: Record<string, string>, req: IncomingMessage, res: ServerResponse): void {
  const gzip = asset.gzip !== undefined && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))
  // Each encoding is its own representation, so it gets its own strong validator.
  const etag = `"${asset.etag}${gzip ? '-gz' : ''}"`
  const all: Record<string, string> = { 'content-type': asset.contentType, etag, vary: 'accept-encoding', ...headers }
  if (matchesEtag(req.headers['if-none-match'], etag)) {
    res.writeHead(304, all)
    res.end()
    return
  }
  const body = gzip ? (asset.gzip as Buffer) : asset.body
  if (gzip) all['content-encoding'] = 'gzip'
  all['content-length'] = String(body.length)
  res.writeHead(200, all)
  res.end(req.method === 'HEAD' ? undefined : body)
}

/** RFC 9110 §13.1.2: weak comparison, so a `W/` prefix added by a proxy still matches. */
function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false
  if (ifNoneMatch.trim() === '*') return true
  return ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)
}
