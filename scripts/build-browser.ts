/**
 * `npm run build`'s browser step: bundles `src/browser/index.ts` with its dependencies into one ES module,
 * `dist/browser/malla.js` (with a source map), which every daemon serves at `/malla.js`, and
 * `src/browser/trystero/index.ts` into `dist/browser/malla-trystero.js` (`/malla-trystero.js`). It prints the
 * bundle's size, raw and gzipped, and fails above the budget: the bundle lives on routers' flash and
 * crosses slow mesh links to every page.
 */
import { build } from 'esbuild'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { BUNDLE_BUDGET_BYTES } from './bundle-budget.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const bundles = [
  { entry: 'src/browser/index.ts', outfile: 'dist/browser/malla.js' },
  // What a Trystero app imports instead of 'trystero' (`/malla-trystero.js` on a daemon): its own file, so a
  // page of such an app loads neither the library's other exports nor needs malla.js.
  { entry: 'src/browser/trystero/index.ts', outfile: 'dist/browser/malla-trystero.js' },
]

for (const { entry, outfile } of bundles) {
  await build({
    absWorkingDir: root,
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: 'esm',
    // Browsers of the last few years; a `node:` import or a Node builtin fails the build here, as it should.
    platform: 'browser',
    target: 'es2020',
    minify: true,
    sourcemap: true,
    logLevel: 'warning',
  })

  const raw = readFileSync(new URL(`../${outfile}`, import.meta.url))
  const gzip = gzipSync(raw, { level: 9 }).length
  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`
  process.stdout.write(`browser bundle ${outfile}: ${kib(raw.length)} raw, ${kib(gzip)} gzip (budget ${kib(BUNDLE_BUDGET_BYTES)} raw)\n`)
  if (raw.length > BUNDLE_BUDGET_BYTES) {
    process.stderr.write(`build: ${outfile} is over its budget by ${kib(raw.length - BUNDLE_BUDGET_BYTES)}; look at what ${entry} now pulls in\n`)
    process.exitCode = 1
  }
}
