import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { ip } from '../../src/node/lab/netns.js'
import { hex, namespaceGuard, needsRoot } from '../integration/netns-helpers.js'
import { browserIn } from './browser.js'
import { suiteBundle } from './in-page/bundle.js'
import type { TestOutcome } from './in-page/node-test.js'

/** Runs a suite's in-page bundle in Chromium and reports each of its tests as a subtest of `t`. */
async function runInPage(t: TestContext, entry: string, only: string | undefined): Promise<TestOutcome[]> {
  needsRoot(t)
  const bundle = await suiteBundle(entry)
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
  await page.waitForFunction(() => typeof (globalThis as { runSuite?: unknown }).runSuite === 'function', undefined, { timeout: 10_000 })
  const outcomes = await page.evaluate((only) => (globalThis as unknown as { runSuite(only?: string): Promise<TestOutcome[]> }).runSuite(only ?? undefined), only ?? null)
  for (const o of outcomes) {
    await t.test(o.name, (st) => {
      for (const d of o.diagnostics) st.diagnostic(d)
      if (!o.ok) assert.fail(`${o.error} (after ${o.ms.toFixed(0)} ms)`)
    })
  }
  return outcomes
}

test('the RTC conformance suite passes against the browser adapter in Chromium', { timeout: 300_000 }, async (t) => {
  const only = process.env.RTC_SUITE_ONLY
  const outcomes = await runInPage(t, 'rtc-suite-page.ts', only)
  if (only === undefined) assert.ok(outcomes.length >= 15, `the suite registered ${outcomes.length} tests in the page`)
})

test('the sync-link conformance suite passes over data channels in Chromium', { timeout: 300_000 }, async (t) => {
  const only = process.env.SYNC_SUITE_ONLY
  const outcomes = await runInPage(t, 'sync-suite-page.ts', only)
  if (only === undefined) assert.ok(outcomes.length >= 7, `the suite registered ${outcomes.length} tests in the page`)
})
