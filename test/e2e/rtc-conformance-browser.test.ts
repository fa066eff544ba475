import assert from 'node:assert/strict'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { ip } from '../../src/node/lab/netns.js'
import { hex, namespaceGuard, needsRoot } from '../integration/netns-helpers.js'
import { browserIn } from './browser.js'
import type { TestOutcome } from './in-page/node-test.js'

const IN_PAGE = fileURLToPath(new URL('./in-page/', import.meta.url))

/**
 * test/conformance/rtc-suite.ts as it stands, bundled for the browser with `node:test`, `node:assert/strict`
 * and `node:timers/promises` swapped for in-page equivalents (test/e2e/in-page/), so the same suite that
 * werift passes runs against the browser adapter over Chromium's own RTCPeerConnection.
 */
async function suiteBundle(): Promise<string> {
  const out = await build({
    entryPoints: [`${IN_PAGE}rtc-suite-page.ts`],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    alias: {
      'node:test': `${IN_PAGE}node-test.ts`,
      'node:assert/strict': `${IN_PAGE}assert-strict.ts`,
      'node:timers/promises': `${IN_PAGE}timers-promises.ts`,
    },
    // The `assert` package's `util` reads these; a page has no `process`.
    define: { 'process.env.NODE_DEBUG': 'false', 'process.env.NODE_ENV': '"test"', process: '{"env":{}}' },
    logLevel: 'silent',
  })
  return (out.outputFiles[0] as { text: string }).text
}

test('the RTC conformance suite passes against the browser adapter in Chromium', { timeout: 300_000 }, async (t) => {
  needsRoot(t)
  const bundle = await suiteBundle()
  // Chromium gathers candidates only on the interface of its default route: a namespace with a veth to a
  // second one, and its default route through it. Both peers live in the one page; nothing leaves the pair.
  const id = hex()
  const ns = `malla-rtcc-${id}`
  const peerNs = `malla-rtcp-${id}`
  await namespaceGuard(t, new RegExp(`^malla-rtc[cp]-${id}$`))
  await ip(['netns', 'add', ns])
  await ip(['netns', 'add', peerNs])
  await ip(['link', 'add', `rc${id}`, 'netns', ns, 'type', 'veth', 'peer', 'name', `rp${id}`, 'netns', peerNs])
  await ip(['-n', ns, 'address', 'add', '10.77.0.1/30', 'dev', `rc${id}`])
  await ip(['-n', peerNs, 'address', 'add', '10.77.0.2/30', 'dev', `rp${id}`])
  for (const [n, dev] of [[ns, `rc${id}`], [peerNs, `rp${id}`]] as const) {
    await ip(['-n', n, 'link', 'set', 'lo', 'up'])
    await ip(['-n', n, 'link', 'set', dev, 'up'])
  }
  await ip(['-n', ns, 'route', 'add', 'default', 'via', '10.77.0.2'])

  const context = await browserIn(t, ns)
  const page = await context.newPage()
  page.on('pageerror', (e) => process.stderr.write(`page: uncaught ${e.message}\n`))
  if (process.env.MALLA_TEST_LOG) page.on('console', (m) => process.stderr.write(`page: ${m.text()}\n`))
  await page.goto('about:blank')
  await page.addScriptTag({ content: bundle, type: 'module' })
  await page.waitForFunction(() => typeof (globalThis as { runRtcSuite?: unknown }).runRtcSuite === 'function', undefined, { timeout: 10_000 })
  const only = process.env.RTC_SUITE_ONLY
  const outcomes = await page.evaluate((only) => (globalThis as unknown as { runRtcSuite(only?: string): Promise<TestOutcome[]> }).runRtcSuite(only ?? undefined), only ?? null)

  if (only === undefined) assert.ok(outcomes.length >= 15, `the suite registered ${outcomes.length} tests in the page`)
  for (const o of outcomes) {
    await t.test(o.name, (st) => {
      for (const d of o.diagnostics) st.diagnostic(d)
      if (!o.ok) assert.fail(`${o.error} (after ${o.ms.toFixed(0)} ms)`)
    })
  }
})
