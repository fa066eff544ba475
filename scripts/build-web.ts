/**
 * `npm run build`'s web-app step: Vite builds `src/web/` (Preact) into `dist/web/`, which every daemon serves
 * at `/` and `malla build-static` copies for plain LibreMesh routers. Asset URLs are relative (`base: './'`),
 * so the same files work from any folder of any web server. It prints what a first visit loads and what
 * the whole app weighs (gzip), and fails over the budgets.
 */
import { build } from 'vite'
import { fileURLToPath } from 'node:url'
import { WEB_BUDGET, webSize } from './web-size.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const outDir = fileURLToPath(new URL('../dist/web', import.meta.url))

await build({
  configFile: false,
  root: `${root}src/web`,
  base: './',
  logLevel: 'warn',
  resolve: {
    alias: {
      'malla/browser': `${root}src/browser/index.ts`,
      'malla/identity': `${root}src/identity/index.ts`,
      // openpgp.js's lightweight build: what Curve25519 keys never use (big-number and elliptic-curve code for
      // RSA and NIST curves, stream polyfills) stays in chunks of their own that a page never fetches.
      openpgp: `${root}node_modules/openpgp/dist/lightweight/openpgp.min.mjs`,
      // SHA-512 (signatures) is imported by this name only (src/identity/pgp-signature.ts), and built from a module
      // instance of its own: one shared with the first load's SHA-256 would put SHA-512 in the first load too
      // (a bundler splits chunks by module, not by export).
      '@noble/hashes/sha512': `${root}node_modules/@noble/hashes/esm/sha2.js?signatures`,
    },
  },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir,
    emptyOutDir: true,
    manifest: true,
    target: 'es2020',
    sourcemap: false,
    // Every module a first load needs is fetched at once anyway: the preload polyfill would only add bytes.
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
})

const size = webSize(outDir)
const kb = (n: number) => `${(n / 1000).toFixed(1)} KB`
process.stdout.write(`web app dist/web: first load ${kb(size.firstLoad.gzip)} gzip (${size.firstLoad.files.length} files), all ${kb(size.total.gzip)} gzip (${size.total.files.length} files); budgets ${kb(WEB_BUDGET.firstLoadGzip)} and ${kb(WEB_BUDGET.totalGzip)}; the OpenPGP library apart: ${kb(size.identityLibrary.gzip)} gzip in ${size.identityLibrary.files.length} chunks, of which a page loads ${kb(size.identityLibrary.loaded.gzip)} on joining\n`)
if (size.firstLoad.gzip > WEB_BUDGET.firstLoadGzip || size.total.gzip > WEB_BUDGET.totalGzip) {
  process.stderr.write('build: the web app is over its size budget; look at what src/web now pulls in (a dependency that could load lazily?)\n')
  process.exitCode = 1
}
