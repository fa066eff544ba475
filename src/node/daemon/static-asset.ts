import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { gunzipSync, gzipSync } from 'node:zlib'

/**
 * A file served from memory: read once at start, with its validator and its compressed form made then too.
 * Only one form is kept: the gzipped one when there is one (every browser takes it), which a client that
 * does not take gzip gets unpacked on the fly; the web app and page bundles with their source maps are
 * ~4 MB as read and ~1 MB gzipped, on a router with little memory.
 */
export interface StaticAsset {
  /** Compressed once at start (a router's CPU is small, and the file never changes while it runs); none for formats already compressed. */
  readonly gzip: Buffer | undefined
  /** The file as read, for formats already compressed. */
  readonly plain: Buffer | undefined
  readonly etag: string
  readonly contentType: string
}

export function staticAsset(body: Buffer, contentType: string, compress = true): StaticAsset {
  return {
    gzip: compress ? gzipSync(body, { level: 9 }) : undefined,
    plain: compress ? undefined : body,
    etag: createHash('sha256').update(body).digest('base64url').slice(0, 22),
    contentType,
  }
}

/** The file's bytes as read. */
export function assetBody(asset: StaticAsset): Buffer {
  return asset.plain ?? gunzipSync(asset.gzip as Buffer)
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
  const body = gzip ? (asset.gzip as Buffer) : assetBody(asset)
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
