/**
 * The cost of identity, in one run: making a key, and signing and verifying an offer-sized record with it,
 * with malla's Ed25519 path against openpgp.js 5.11 (the baseline: what a page would pay signing with the
 * OpenPGP library itself), both on the same key and the same bytes, median of 200 each:
 * - in a Chromium page on plain http:// (thisnode.info mapped to a loopback server: no secure context, no
 *   WebCrypto, as a page served by a LibreMesh router);
 * - in Node (a `malla join` peer or a daemon).
 *
 * `npm run bench -- identity [--quick]`; needs /usr/bin/chromium. Chromium runs on the host's network: the
 * page opens no connection except to this benchmark's loopback server.
 */
import { build } from 'esbuild'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as openpgp from 'openpgp'
import { chromium } from 'playwright-core'
import { createIdentity } from '../src/identity/identity.js'
import { Cleanup } from './lib/cleanup.js'
import { timeIdentity, type IdentityTimings } from './lib/identity-timing.js'
import { row, type BenchContext, type BenchResult, type BenchRow } from './lib/result.js'
import { summarize } from './lib/stats.js'
import { WEB_BUDGET, webSize } from '../scripts/web-size.js'

const WEB = fileURLToPath(new URL('../dist/web/', import.meta.url))

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
/** The budget: what signatures may add to one connection (an offer signed, and verified by its answerer, and back). */
const TARGET_CONNECT_MS = 20

async function inPage(cleanup: Cleanup, reps: number): Promise<IdentityTimings> {
  const out = await build({ entryPoints: [fileURLToPath(new URL('./lib/identity-page.ts', import.meta.url))], bundle: true, write: false, format: 'esm', platform: 'browser', target: 'es2022', logLevel: 'silent' })
  const bundle = (out.outputFiles[0] as { text: string }).text
  const server = createServer((req, res) => {
    if (req.url === '/identity.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(bundle)
    else res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><script type="module" src="/identity.js"></script>')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanup.add('stop the page server', () => new Promise((resolve) => server.close(resolve)))
  const dir = await mkdtemp(join(tmpdir(), 'malla-bench-identity-'))
  cleanup.add('remove the browser profile', () => rm(dir, { recursive: true, force: true }))
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_FLAGS, '--host-resolver-rules=MAP thisnode.info 127.0.0.1'], timeout: 30_000 })
  cleanup.add('close the browser', () => context.close())
  const page = context.pages()[0] ?? (await context.newPage())
  await page.goto(`http://thisnode.info:${(server.address() as { port: number }).port}/`, { timeout: 15_000 })
  await page.waitForFunction(() => 'runIdentityTimings' in globalThis, undefined, { timeout: 15_000 })
  return page.evaluate((reps) => (globalThis as unknown as { runIdentityTimings(n: number): Promise<IdentityTimings> }).runIdentityTimings(reps), reps)
}

function rows(where: string, t: IdentityTimings): BenchRow[] {
  const section = `${where}${t.secureContext ? '' : ' (no secure context)'}`
  const connect = summarize(t.sign.map((s, i) => 2 * s + 2 * (t.verify[i] as number)))
  const connectPgp = summarize(t.openpgpSign.map((s, i) => 2 * s + 2 * (t.openpgpVerify[i] as number)))
  return [
    row({ section, name: 'make a key pair (openpgp.js)', unit: 'ms', value: summarize(t.keygen) }),
    row({ section, name: 'sign an offer', unit: 'ms', value: summarize(t.sign), baseline: { name: 'openpgp.js sign', value: summarize(t.openpgpSign) } }),
    row({ section, name: 'verify an offer', unit: 'ms', value: summarize(t.verify), baseline: { name: 'openpgp.js verify', value: summarize(t.openpgpVerify) } }),
    row({ section, name: 'added to a connection (2 signed, 2 verified)', unit: 'ms', value: connect, baseline: { name: 'with openpgp.js', value: connectPgp }, target: TARGET_CONNECT_MS }),
    row({ section, name: 'signature size', unit: 'B', value: t.signatureBytes, baseline: { name: 'openpgp.js', value: t.openpgpSignatureBytes } }),
  ]
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  if (!existsSync(CHROMIUM)) throw new Error(`identity: cannot run: ${CHROMIUM} is missing (Debian's chromium package); no rows were measured`)
  const reps = ctx.args.includes('--quick') ? 50 : 200
  const cleanup = new Cleanup()
  let page: IdentityTimings
  try {
    page = await inPage(cleanup, reps)
  } finally {
    await cleanup.run()
  }
  ctx.progress(`page: sign ${summarize(page.sign).median.toFixed(2)} ms, verify ${summarize(page.verify).median.toFixed(2)} ms`)
  const node = await timeIdentity(createIdentity, openpgp, reps)
  const size = existsSync(join(WEB, '.vite', 'manifest.json')) ? webSize(WEB) : undefined
  const kb = (n: number) => Math.round(n / 100) / 10
  const sizeRows = size
    ? [
        // What a first visit loads, against what it would load with openpgp.js in it (the chunk a page loads when it joins).
        row({ section: 'the web app (gzip)', name: 'first load', unit: 'KB', value: kb(size.firstLoad.gzip), baseline: { name: 'with the OpenPGP code in it', value: kb(size.firstLoad.gzip + size.identityLibrary.loaded.gzip) }, target: kb(WEB_BUDGET.firstLoadGzip) }),
        row({ section: 'the web app (gzip)', name: 'openpgp.js, loaded on joining', unit: 'KB', value: kb(size.identityLibrary.loaded.gzip) }),
      ]
    : []
  return {
    title: 'a key, and a signed offer made and checked, malla\'s Ed25519 path against openpgp.js',
    rows: [...rows('Chromium page on http://', page), ...rows('Node', node), ...sizeRows],
    params: { reps, keygenReps: 5, offerBytes: 'about 330' },
    notes: [
      'Each figure is the median of the repetitions on one key and the same offer-sized bytes; the baseline is openpgp.js 5.11 (the version that loads without WebCrypto) signing or verifying those bytes as a detached binary signature, on the same key.',
      'A connection costs its offerer one signature (the offer) and one check (the answer), and its answerer the same: the row "added to a connection" is 2 × sign + 2 × verify, repetition by repetition; the target is the issue\'s 20 ms.',
      'Time-to-connect with signatures on against off is mode (e) of `npm run bench -- signaling`, against (b) in the same run.',
      size ? `The web app's sizes are those of the build in dist/web (\`npm run build\`): its first load (index.html, the entry chunk and what it imports statically) against the same plus openpgp.js's chunk, which a page fetches only when it joins (${size.identityLibrary.loaded.files.join(', ')}).` : 'dist/web is not built: no size rows (run `npm run build` first).',
    ],
  }
}
