import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { Logger } from '../../src/core/log.js'
import { WEB_BUDGET, webSize } from '../../scripts/web-size.js'
import { inProcessDaemon } from '../helpers/in-process-daemon.js'
import { startDaemon, tempDir } from '../helpers/processes.js'

/** What `npm run build` wrote; the tests run after it, as `npm test` does. */
const WEB = fileURLToPath(new URL('../../dist/web/', import.meta.url))
const get = (url: string, headers: Record<string, string> = {}, method = 'GET') => fetch(url, { method, headers, signal: AbortSignal.timeout(5000) })

test('every daemon serves the web app at /: index revalidated, hashed assets cached for good, gzipped when asked', { timeout: 30_000 }, async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t)])
  assert.ok(!d.log.some((l) => /web app/.test(l)), `no warning about the web app:\n${d.log.join('\n')}`)
  const index = await get(`${d.base}/`, { 'accept-encoding': 'identity' })
  assert.equal(index.status, 200)
  assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8')
  assert.equal(index.headers.get('cache-control'), 'no-cache')
  // Served with a strict policy: its own files only, no inline script, no framing; and the same policy in the
  // page itself, for the static build on routers that send no header.
  const csp = index.headers.get('content-security-policy') ?? ''
  assert.match(csp, /default-src 'self'/)
  assert.match(csp, /script-src 'self' 'wasm-unsafe-eval';/)
  assert.doesNotMatch(csp, /'unsafe-inline'|'unsafe-eval'|\*/)
  assert.match(csp, /frame-ancestors 'none'/)
  assert.equal(index.headers.get('x-content-type-options'), 'nosniff')
  assert.equal(index.headers.get('referrer-policy'), 'no-referrer')
  const html = await index.text()
  assert.ok(html.includes(`content="${csp.replace("; frame-ancestors 'none'", '')}"`), 'the page carries the same policy')
  assert.doesNotMatch(html.replace(/<script[^>]*src="[^"]+"[^>]*><\/script>/g, ''), /<script/, 'no inline script')
  assert.equal(html, readFileSync(`${WEB}index.html`, 'utf8'))
  const etag = index.headers.get('etag') as string
  assert.equal((await get(`${d.base}/`, { 'if-none-match': etag, 'accept-encoding': 'identity' })).status, 304)
  assert.equal((await get(`${d.base}/index.html`, { 'accept-encoding': 'identity' })).headers.get('etag'), etag, '/ is /index.html')

  const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(html)?.[1]
  assert.ok(script, `the index names its entry script:\n${html}`)
  const js = await get(`${d.base}/${script}`, { 'accept-encoding': 'gzip' })
  assert.equal(js.status, 200)
  assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8')
  assert.equal(js.headers.get('cache-control'), 'public, max-age=31536000, immutable')
  assert.equal(js.headers.get('content-encoding'), 'gzip')
  assert.equal(await js.text(), readFileSync(`${WEB}${script}`, 'utf8'))
  const head = await get(`${d.base}/`, {}, 'HEAD')
  assert.equal(head.status, 200)
  assert.equal(await head.text(), '')

  for (const path of ['/assets/nope.js', '/.vite/manifest.json', '/../package.json', '/assets/../../package.json']) {
    assert.equal((await get(`${d.base}${path}`)).status, 404, path)
  }
  assert.equal((await fetch(`${d.base}/`, { method: 'POST', body: '', signal: AbortSignal.timeout(5000) })).status, 405)
  // The developer pages moved under /debug/.
  assert.match(await (await get(`${d.base}/debug/`)).text(), /malla router/)
  assert.match(await (await get(`${d.base}/debug/room`)).text(), /malla room/)
})

test(`the app's first load stays under ${WEB_BUDGET.firstLoadGzip / 1000} KB gzip and all of it under ${WEB_BUDGET.totalGzip / 1000} KB; the map loads lazily`, () => {
  const size = webSize(WEB)
  assert.ok(size.firstLoad.gzip < WEB_BUDGET.firstLoadGzip, JSON.stringify(size.firstLoad))
  assert.ok(size.total.gzip < WEB_BUDGET.totalGzip, JSON.stringify(size.total))
  const lazy = size.total.files.filter((f) => f.endsWith('.js') && !size.firstLoad.files.includes(f))
  assert.ok(lazy.some((f) => /MapView/.test(f)), `the map is a chunk of its own, not in the first load: ${lazy.join(', ')}`)
  // The identity code loads with the join: openpgp.js, Ed25519 and SHA-512 (one of its round constants) are
  // in no file of the first load, and openpgp.js's chunks are counted apart.
  assert.ok(size.identityLibrary.loaded.files.length > 0 && size.identityLibrary.loaded.files.every((f) => !size.firstLoad.files.includes(f)), JSON.stringify(size.identityLibrary))
  for (const f of size.firstLoad.files.filter((f) => f.endsWith('.js'))) {
    const text = readFileSync(`${WEB}${f}`, 'utf8')
    assert.doesNotMatch(text, /428a2f98d728ae22/, `${f}: SHA-512 in the first load`)
    assert.doesNotMatch(text, /openpgp|BEGIN PGP/i, `${f}: OpenPGP in the first load`)
  }
  // Nothing comes from outside the router: no absolute URL to another host in any file.
  for (const f of size.total.files) {
    const text = readFileSync(`${WEB}${f}`, 'utf8')
    assert.doesNotMatch(text, /(?:src|href)=["']https?:\/\//, f)
    assert.doesNotMatch(text, /@import\s+url\(["']?https?:/, f)
  }
})

test('the app uses only the library\'s public API (malla/browser, malla/identity), so it is its reference example', () => {
  const files = readFileSync(fileURLToPath(new URL('../../tsconfig.web.json', import.meta.url)), 'utf8')
  assert.match(files, /"malla\/browser": \["\.\/src\/browser\/index\.ts"\]/)
  const sources = webSources()
  assert.ok(sources.length > 5)
  for (const [path, text] of sources) {
    for (const m of text.matchAll(/\bfrom\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      const spec = (m[1] ?? m[2]) as string
      const ok = spec === 'malla/browser' || spec === 'malla/identity' || spec.startsWith('./') || (spec.startsWith('../') && !spec.startsWith('../../')) || /^(preact|@preact\/signals|d3-force)(\/|$)/.test(spec)
      assert.ok(ok, `${path} imports ${spec}: the app may use malla/browser and malla/identity, its own modules and its UI libraries only`)
    }
  }
})

test('a daemon whose web app was not built warns at start and answers / with a clear 404', { timeout: 30_000 }, async (t) => {
  const lines: string[] = []
  const record = (level: string) => (message: string, fields?: Record<string, unknown>) => lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`)
  const log: Logger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') }
  const daemon = await inProcessDaemon(t, { name: 'W', log, webDir: await tempDir(t) })
  await daemon.start()
  assert.ok(lines.some((l) => /^warn web app not built/.test(l)), lines.join('\n'))
  const res = await get(new URL('/', daemon.url).href)
  assert.equal(res.status, 404)
  assert.match(((await res.json()) as { error: { message: string } }).error.message, /web app is not built: run `npm run build`/)
})

function webSources(): Array<[string, string]> {
  const root = fileURLToPath(new URL('../../src/web/', import.meta.url))
  const out: Array<[string, string]> = []
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = `${dir}${name}`
      if (statSync(path).isDirectory()) walk(`${path}/`)
      else if (/\.tsx?$/.test(name)) out.push([path, readFileSync(path, 'utf8')])
    }
  }
  walk(root)
  return out
}
