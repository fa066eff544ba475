import { request } from 'node:http'
import { MallaError } from '../../core/errors.js'
import type { HttpPoster, HttpReply, PostRequest } from '../../transport/http-poster.js'

/**
 * POST with `node:http`. Unlike `fetch`, it reaches IPv6 link-local neighbours with a zone
 * (`http://[fe80::1%25br-lan]/...`), which is how LibreMesh addresses the routers it discovers.
 */
export const nodeHttpPoster: HttpPoster = {
  post(req: PostRequest): Promise<HttpReply> {
    const target = parseHttpUrl(req.url)
    return new Promise<HttpReply>((resolve, reject) => {
      const fail = (reason: string, cause?: unknown) =>
        reject(cause instanceof MallaError ? cause : new MallaError('PEER', `POST ${req.url} failed: ${reason}`, { cause }))
      const r = request(
        {
          host: target.host,
          port: target.port,
          path: target.path,
          method: 'POST',
          headers: { ...req.headers, 'content-length': String(req.body.byteLength) },
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = []
          let total = 0
          res.on('data', (chunk: Buffer) => {
            total += chunk.byteLength
            if (total > req.maxReplyBytes) {
              r.destroy(new MallaError('TOO_LARGE', `${req.url} answered more than the ${req.maxReplyBytes} byte limit`))
              return
            }
            chunks.push(chunk)
          })
          res.on('end', () => {
            clearTimeout(timer)
            const headers = new Map<string, string>()
            for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers.set(k, String(v))
            const body = Buffer.concat(chunks, total)
            resolve({ status: res.statusCode ?? 0, headers, body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength) })
          })
          res.on('error', (e) => fail(e.message, e))
        },
      )
      const timer = setTimeout(() => r.destroy(new Error(`no complete answer within ${req.timeoutMs} ms`)), req.timeoutMs)
      r.on('error', (e) => {
        clearTimeout(timer)
        fail(e.message, e)
      })
      r.end(req.body)
    })
  },
}

/** Splits an http:// URL, keeping an IPv6 zone (`%25iface` in the URL) that `new URL` would reject. */
export function parseHttpUrl(url: string): { host: string; port: number; path: string } {
  const m = /^http:\/\/(\[([^\]]+)\]|[^/:?#]+)(?::(\d+))?([/?][^#]*)?(#.*)?$/i.exec(url)
  if (!m) throw new MallaError('BAD_INPUT', `not an http:// URL: ${url}`)
  const host = m[2] !== undefined ? decodeURIComponent(m[2]) : (m[1] as string)
  const port = m[3] !== undefined ? Number(m[3]) : 80
  if (port < 1 || port > 65535) throw new MallaError('BAD_INPUT', `bad port in ${url}`)
  return { host, port, path: m[4] ?? '/' }
}
