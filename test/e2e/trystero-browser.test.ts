import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'
import { startDaemon, tempDir } from '../helpers/processes.js'
import { loopbackNamespace, needsRoot } from '../integration/netns-helpers.js'
import { screenshots } from './app-page.js'
import { browserIn } from './browser.js'

const EXAMPLE = fileURLToPath(new URL('../../examples/trystero-chat/', import.meta.url))

/** FNV-1a over bytes: the same digest in Node and in a page that has no crypto.subtle. */
function fnv(bytes: Uint8Array): number {
  let h = 0x811c9dc5
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0
  return h
}

async function selfOf(page: Page): Promise<string> {
  await page.waitForFunction(() => (document.getElementById('self')?.textContent ?? '') !== '', undefined, { timeout: 10_000 })
  return (await page.textContent('#self')) as string
}

/** Records every value the page writes to a `data-progress` attribute under #transfers (the app keeps only the last). */
function recordProgress(page: Page): Promise<void> {
  return page.evaluate(() => {
    const seen: number[] = []
    ;(window as unknown as { __progress: number[] }).__progress = seen
    new MutationObserver((records) => {
      for (const r of records) seen.push(Number((r.target as HTMLElement).dataset.progress))
    }).observe(document.getElementById('transfers') as HTMLElement, { subtree: true, attributes: true, attributeFilter: ['data-progress'] })
  })
}

const progressOf = (page: Page) => page.evaluate(() => (window as unknown as { __progress: number[] }).__progress)

test('a Trystero app on a malla router: two pages on plain http:// meet, chat, send a file with progress, ping and leave', { timeout: Number(process.env.E2E_TIMEOUT ?? 180_000) }, async (t) => {
  if (!needsRoot(t)) return
  // A namespace of its own with loopback only: the daemon, both pages and their WebRTC stay on 127.0.0.1.
  const ns = await loopbackNamespace(t, 'mtry')
  const data = await tempDir(t, 'malla-trystero-')
  // The router serves the app itself (as uhttpd serves a LibreMesh router's web root) and /malla-trystero.js.
  const daemon = await startDaemon(t, ['--data', data, '--name', 'r1', '--web', EXAMPLE], { netns: ns })
  // The router by name, as LibreMesh users reach it: 127.0.0.1 itself would count as a secure context.
  const browser = await browserIn(t, ns, ['--allow-loopback-in-peer-connection', '--host-resolver-rules=MAP thisnode.info 127.0.0.1'])
  const origin = `http://thisnode.info:${new URL(daemon.base).port}`
  const open = async () => {
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    // Console errors count (a refused load, the Content-Security-Policy, the library's own reports), but for
    // Chromium's note that the router's Cross-Origin-Opener-Policy header means nothing on plain http://.
    page.on('console', (m) => m.type() === 'error' && !/Cross-Origin-Opener-Policy header has been ignored/.test(m.text()) && errors.push(m.text()))
    await page.goto(`${origin}/index.html?room=e2e`, { timeout: 15_000 })
    return { page, errors, id: await selfOf(page) }
  }
  const a = await open()
  const b = await open()
  const started = Date.now()

  await t.test('the pages are not a secure context: no crypto.subtle', async () => {
    for (const p of [a, b]) assert.deepEqual(await p.page.evaluate(() => [isSecureContext, typeof crypto.subtle]), [false, 'undefined'])
    assert.match(a.id, /^[a-z0-9]{20}$/)
    assert.notEqual(a.id, b.id)
  })

  await t.test('each sees the other join (onPeerJoin, getPeers)', async () => {
    await a.page.waitForSelector(`#peers li[data-peer="${b.id}"]`, { timeout: 45_000 })
    await b.page.waitForSelector(`#peers li[data-peer="${a.id}"]`, { timeout: 45_000 })
    t.diagnostic(`connected ${Date.now() - started} ms after both pages loaded`)
    assert.equal(await a.page.textContent('#count'), '1 peer')
    assert.equal(await b.page.textContent('#count'), '1 peer')
    assert.match((await a.page.textContent('#lines')) ?? '', new RegExp(`${b.id.slice(0, 6)} joined`))
  })

  await t.test('chat both ways', async () => {
    await a.page.fill('#text', 'hello from a')
    await a.page.press('#text', 'Enter')
    await b.page.waitForSelector(`#lines li:has-text("hello from a")`, { timeout: 10_000 })
    assert.equal(await b.page.textContent('#lines li:has-text("hello from a") .from'), a.id.slice(0, 6))
    await b.page.fill('#text', 'and back from b ✓')
    await b.page.press('#text', 'Enter')
    await a.page.waitForSelector(`#lines li:has-text("and back from b ✓")`, { timeout: 10_000 })
  })

  await t.test('a binary file in chunks, with progress reaching 1 on both sides, arrives intact with its metadata', async () => {
    const bytes = randomBytes(600 * 1024)
    await Promise.all([recordProgress(a.page), recordProgress(b.page)])
    await a.page.setInputFiles('#file', { name: 'blob.bin', mimeType: 'application/x-test', buffer: bytes })
    const row = `#transfers li[data-key="in-${a.id}-blob.bin"][data-done]`
    await b.page.waitForSelector(row, { timeout: 30_000 })
    assert.equal(await b.page.getAttribute(row, 'data-done'), String(bytes.length))
    assert.equal(await b.page.getAttribute(row, 'data-progress'), '1')
    // Saved as a person would: the download link the app made of the received bytes.
    const [download] = await Promise.all([b.page.waitForEvent('download', { timeout: 10_000 }), b.page.click(`${row} a`)])
    assert.equal(download.suggestedFilename(), 'blob.bin')
    const saved = new Uint8Array(await readFile((await download.path()) as string))
    assert.deepEqual({ size: saved.length, hash: fnv(saved) }, { size: bytes.length, hash: fnv(bytes) })
    assert.equal(await b.page.$eval(`${row} a`, (el) => (el as HTMLAnchorElement).textContent), `blob.bin (${bytes.length} bytes) from ${a.id.slice(0, 6)}`)
    await a.page.waitForSelector('#transfers li[data-key="out-blob.bin"][data-done]', { timeout: 10_000 })
    const [sent, received] = await Promise.all([progressOf(a.page), progressOf(b.page)])
    for (const [side, values] of [['sent', sent], ['received', received]] as const) {
      assert.ok(values.length >= 30, `${side}: ${values.length} progress calls for ${bytes.length} bytes`)
      assert.equal(values.at(-1), 1, `${side} progress reaches 1`)
      assert.ok(values.every((v, i) => v > 0 && v <= 1 && (i === 0 || v >= (values[i - 1] as number))), `${side} progress grows: ${values.join(',')}`)
    }
    await screenshots(a.page, 'trystero-chat-sender')
    await screenshots(b.page, 'trystero-chat-receiver')
  })

  await t.test('ping returns a round trip in milliseconds', async () => {
    await a.page.click(`#peers li[data-peer="${b.id}"] button`)
    await a.page.waitForSelector(`#peers li[data-peer="${b.id}"] button:has-text(" ms")`, { timeout: 10_000 })
    const text = (await a.page.textContent(`#peers li[data-peer="${b.id}"] button`)) as string
    assert.match(text, /^\d+ ms$/)
    t.diagnostic(`ping: ${text}`)
  })

  await t.test('leaving fires onPeerLeave on the other side', async () => {
    const left = Date.now()
    await b.page.click('#leave')
    await a.page.waitForSelector(`#lines li:has-text("${b.id.slice(0, 6)} left")`, { timeout: 15_000 })
    t.diagnostic(`onPeerLeave ${Date.now() - left} ms after leave()`)
    assert.equal(await a.page.textContent('#count'), '0 peers')
    assert.equal(await a.page.$(`#peers li[data-peer="${b.id}"]`), null)
    // leave() itself resolves once the router has the withdrawal: after the other side saw the connection go.
    await b.page.waitForSelector('#count:has-text("left the room")', { timeout: 15_000 })
    t.diagnostic(`leave() resolved ${Date.now() - left} ms after it was called`)
  })

  assert.deepEqual(a.errors, [], 'no errors in the first page')
  assert.deepEqual(b.errors, [], 'no errors in the second page')
})
