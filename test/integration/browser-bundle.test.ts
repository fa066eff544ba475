import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { gzipSync } from 'node:zlib'
import type { Logger } from '../../src/core/log.js'
import { BUNDLE_BUDGET_BYTES } from '../../scripts/bundle-budget.js'
import { inProcessDaemon } from '../helpers/in-process-daemon.js'
import { startDaemon, tempDir } from '../helpers/processes.js'

/** What `npm run build` wrote; the tests run after it, as `npm test` does. */
const BUNDLE = fileURLToPath(new URL('../../dist/browser/malla.js', import.meta.url))
const get = (url: string, headers: Record<string, string> = {}) => fetch(url, { headers, signal: AbortSignal.timeout(5000) })

test('every daemon serves the built bundle at /malla.js, revalidated by ETag, gzipped when asked', { timeout: 30_000 }, async (t) => {
  const built = readFileSync(BUNDLE)
  const d = await startDaemon(t, ['--data', await tempDir(t)])
  assert.ok(!d.log.some((l) => /bundle/.test(l)), `no warning about the bundle:\n${d.log.join('\n')}`)

  const plain = await get(`${d.base}/malla.js`, { 'accept-encoding': 'identity' })
  assert.equal(plain.status, 200)
  assert.equal(plain.headers.get('content-type'), 'text/javascript; charset=utf-8')
  assert.equal(plain.headers.get('cache-control'), 'no-cache')
  assert.equal(plain.headers.get('content-encoding'), null)
  assert.equal(plain.headers.get('content-length'), String(built.length))
  assert.ok(Buffer.from(await plain.arrayBuffer()).equals(built), 'the file as built')
  const etag = plain.headers.get('etag')
  assert.match(etag ?? '', /^"[A-Za-z0-9_-]+"$/)

  const again = await get(`${d.base}/malla.js`, { 'accept-encoding': 'identity', 'if-none-match': etag! })
  assert.equal(again.status, 304)
  assert.equal(await again.text(), '')

  const zipped = await get(`${d.base}/malla.js`, { 'accept-encoding': 'gzip' })
  assert.equal(zipped.headers.get('content-encoding'), 'gzip')
  assert.notEqual(zipped.headers.get('etag'), etag, 'each encoding has its own validator')
  assert.ok(Buffer.from(await zipped.arrayBuffer()).equals(built), 'fetch unzips it back to the file')

  const map = await get(`${d.base}/malla.js.map`)
  assert.equal(map.status, 200)
  assert.equal(map.headers.get('content-type'), 'application/json; charset=utf-8')
  const parsed = (await map.json()) as { version: number; sources: string[] }
  assert.equal(parsed.version, 3)
  assert.ok(parsed.sources.some((s) => s.endsWith('src/replica/replica.ts')), 'maps back to the TypeScript sources')

  const post = await fetch(`${d.base}/malla.js`, { method: 'POST', body: '', signal: AbortSignal.timeout(5000) })
  assert.equal(post.status, 405)
})

test(`the bundle is one self-contained ES module for browsers, under ${BUNDLE_BUDGET_BYTES / 1024} KiB`, { timeout: 30_000 }, async (t) => {
  const text = readFileSync(BUNDLE, 'utf8')
  assert.ok(!text.includes('node:'), 'no node: import (nor any other mention of one)')
  // Everything is inlined: an import or require left in the text would fail in a page (or fetch a Node builtin).
  assert.doesNotMatch(text, /\bimport\s*\(|\bimport\s*[\w$*{][^;]*?\bfrom\s*["']|\bimport\s*["']|\brequire\s*\(/)
  assert.ok(text.length <= BUNDLE_BUDGET_BYTES, `${text.length} bytes, over the budget of ${BUNDLE_BUDGET_BYTES}`)
  assert.match(text, /\n\/\/# sourceMappingURL=malla\.js\.map\n?$/)
  const gzip = gzipSync(text).length
  t.diagnostic(`bundle: ${text.length} bytes raw, ${gzip} gzip`)
  // It also runs: the isomorphic API a page needs is exported.
  const mod = (await import(pathToFileURL(BUNDLE).href)) as Record<string, unknown>
  for (const name of ['Replica', 'MemoryStore', 'DaemonApiClient', 'syncTable', 'MallaError']) assert.equal(typeof mod[name], 'function', name)
})

test('a daemon whose bundle was not built warns at start and answers /malla.js with a clear 404', { timeout: 30_000 }, async (t) => {
  const lines: string[] = []
  const record = (level: string) => (message: string, fields?: Record<string, unknown>) => lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`)
  const log: Logger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') }
  const daemon = await inProcessDaemon(t, { name: 'B', log, bundleDir: await tempDir(t) })
  await daemon.start()
  assert.ok(lines.some((l) => /^warn browser bundle not built.*npm run build/.test(l) && l.includes('malla.js')), lines.join('\n'))
  const res = await get(new URL('malla.js', daemon.url).href)
  assert.equal(res.status, 404)
  const body = (await res.json()) as { error: { code: string; message: string } }
  assert.equal(body.error.code, 'NOT_FOUND')
  assert.match(body.error.message, /browser bundle is not built: run `npm run build`/)
  const info = await get(new URL('malla/v1/info', daemon.url).href)
  assert.equal(info.status, 200, 'the rest is served')
})
