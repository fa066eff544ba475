import { Agent, request } from 'node:http'
import { MallaError } from '../../core/errors.js'
import type { HttpPoster, HttpReply, PostRequest } from '../../transport/http-poster.js'

/**
 * Connections to neighbours are kept open between exchanges: a push is a few hundred bytes, and a new TCP
 * connection per push (and the server's per-connection setup) was a good part of each hop's time.
 * Node's agent drops an idle socket when the server's `Keep-Alive: timeout` says so; LibreMesh's uhttpd
 * closes after each CGI answer, and the agent then simply opens a new one.
 */
const keepAlive = new Agent({ keepAlive: true, maxSockets: 4, maxFreeSockets: 4, timeout: 60_000 })

/**
 * POST with `node:http`. Unlike `fetch`, it reaches IPv6 link-local neighbours with a zone
 * (`http://[fe80::1%25br-lan]/...`), which is how LibreMesh addresses the routers it discovers.
 */
export const nodeHttpPoster: HttpPoster = {
  async post(req: PostRequest): Promise<HttpReply> {
    try {
      return await postOnce(req)
    } catch (error) {
      // A kept-alive socket the server closed just as we reused it: try once more on a new one (an
      // exchange is a CRDT merge, so even one that did reach the server is safe to repeat).
      if (error instanceof StaleSocket) return postOnce(req, false)
      throw error
    }
  },
}

class StaleSocket extends Error {}

function postOnce(req: PostRequest, reuse = true): Promise<HttpReply> {
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
        agent: reuse ? keepAlive : false,
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
    r.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      if (r.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) reject(new StaleSocket(e.message))
      else fail(e.message, e)
    })
    r.end(req.body)
  })
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
