import { readFile } from 'node:fs/promises'
import { createServer, type Server, type ServerResponse } from 'node:http'
import { extname, join, normalize } from 'node:path'
import type { AddressInfo } from 'node:net'
import { gunzipSync, gzipSync } from 'node:zlib'

/**
 * A stand-in for a LibreMesh router running the original Lua shared-state CGI, for CI, where the Lua
 * code cannot run. It reproduces the behaviour recorded from the real thing (shared/seed/lua-wire-examples.md):
 * TTL-only merge keeping remote entries whole, json-c output (`[]` for an empty table, `\/` escaped,
 * removed entries without `data`), errors as an empty 200, unparsable JSON merged as an empty table,
 * `?gzip` both ways, a chunked-friendly reader, and no Content-Length on answers.
 */
export class LuaRouterDouble {
  readonly tables = new Map<string, Record<string, Record<string, unknown>>>()
  /** 'normal', or a fault to act out. */
  mode: 'normal' | 'empty-200' | 'hang' | 'garbage' = 'normal'
  requests = 0
  /** Requests that carried malla's push header (a malla node must never send one to a LibreMesh router). */
  pushRequests = 0
  private server: Server | undefined

  constructor(readonly name = 'W1') {}

  /**
   * Listens on `host:port` (127.0.0.1, any free port by default). With `staticDir`, GETs are answered with
   * its files, as a router's uhttpd serves /www: an app dropped into the web root beside the CGI. With `ubus`,
   * POST /ubus is answered by it, as uhttpd's ubus module answers (an RpcdDouble's `answer`).
   */
  async start(options: { host?: string; port?: number; staticDir?: string; ubus?: (body: string) => Promise<string> } = {}): Promise<string> {
    this.server = createServer((req, res) => {
      if (options.staticDir && req.method === 'GET' && !(req.url ?? '').startsWith('/cgi-bin/')) return serveStatic(options.staticDir, req.url ?? '/', res)
      const ubus = options.ubus
      if (ubus && req.method === 'POST' && req.url === '/ubus') {
        const body: Buffer[] = []
        req.on('data', (c: Buffer) => body.push(c))
        req.on('end', () => {
          void ubus(Buffer.concat(body).toString()).then((text) => {
            res.writeHead(200, { 'content-type': 'application/json' })
            res.end(text)
          })
        })
        return
      }
      this.requests++
      if (req.headers['x-malla-sync'] !== undefined) this.pushRequests++
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        if (this.mode === 'hang') return
        res.writeHead(200, { 'content-type': 'application/json', connection: 'close' })
        if (this.mode === 'garbage') return res.end('<html>502 bad gateway</html>')
        const m = /^\/cgi-bin\/shared-state\/([a-zA-Z0-9_-]*)(\?.*)?$/.exec(req.url ?? '')
        if (req.method !== 'POST' || !m || this.mode === 'empty-200') return res.end()
        const gzip = (m[2] ?? '').includes('gzip')
        let body = Buffer.concat(chunks)
        if (gzip) body = gunzipSync(body)
        let remote: unknown
        try {
          remote = JSON.parse(body.toString() || 'null')
        } catch {
          remote = null // luci.jsonc gives nil, merged as an empty table
        }
        const local = this.tables.get(m[1] as string) ?? {}
        try {
          for (const [key, rv] of Object.entries((remote ?? {}) as Record<string, Record<string, unknown>>)) {
            if (typeof rv.bleachTTL !== 'number') throw new Error('attempt to compare nil with number') // Lua fails: empty 200
            if (rv.bleachTTL <= 0) continue
            const lv = local[key]
            if (lv === undefined || (lv.bleachTTL as number) < rv.bleachTTL) local[key] = jsoncRoundTrip(rv)
          }
        } catch {
          return res.end()
        }
        this.tables.set(m[1] as string, local)
        const text = jsoncStringify(local) + '\n'
        res.end(gzip ? gzipSync(text) : text)
      })
    })
    const host = options.host ?? '127.0.0.1'
    await new Promise<void>((resolve) => this.server!.listen(options.port ?? 0, host, resolve))
    return `http://${host.includes(':') ? `[${host}]` : host}:${(this.server.address() as AddressInfo).port}`
  }

  /** The Lua CLI's insert: `{data, author: hostname, bleachTTL: 30}`, no clock. */
  insert(type: string, values: Record<string, unknown>, ttl = 30): void {
    const t = this.tables.get(type) ?? {}
    for (const [k, data] of Object.entries(values)) t[k] = jsoncRoundTrip({ bleachTTL: ttl, data, author: this.name })
    this.tables.set(type, t)
  }

  /** The Lua CLI's bleach. */
  bleach(type: string): void {
    const t = this.tables.get(type) ?? {}
    for (const [k, v] of Object.entries(t)) {
      if ((v.bleachTTL as number) < 2) delete t[k]
      else v.bleachTTL = (v.bleachTTL as number) - 1
    }
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }
}

/** What a value looks like after luci.jsonc parsed and re-serialised it: nulls dropped, `{}` as `[]`. */
function jsoncRoundTrip(value: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(jsoncStringify(value)) as Record<string, unknown>
}

function jsoncStringify(value: unknown): string {
  if (value === null || value === undefined) return 'null'
  if (Array.isArray(value)) return `[${value.map(jsoncStringify).join(',')}]`
  if (typeof value === 'object') {
    const fields = Object.entries(value).filter(([, v]) => v !== null && v !== undefined)
    if (fields.length === 0) return '[]'
    return `{${fields.map(([k, v]) => `${JSON.stringify(k)}:${jsoncStringify(v)}`).join(',')}}`
  }
  return JSON.stringify(value).replace(/\//g, '\\/')
}

const CONTENT_TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.map': 'application/json', '.css': 'text/css', '.svg': 'image/svg+xml' }

async function serveStatic(dir: string, url: string, res: ServerResponse): Promise<void> {
  const path = normalize(decodeURIComponent(url.split('?')[0] ?? '/')).replace(/^(\.\.[/\\])+/, '')
  const file = join(dir, path.endsWith('/') ? `${path}index.html` : path)
  try {
    const body = await readFile(file)
    res.writeHead(200, { 'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream' })
    res.end(body)
  } catch {
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end('not found\n')
  }
}
