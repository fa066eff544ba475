/**
 * `npm run build`'s single-file step: bundles the CLI and daemon (`src/node/cli/main.ts`) with every dependency
 * into one ES module, `dist/single/malla.mjs`, that runs with `node` alone: no npm, no node_modules. For
 * OpenWrt devices that have Node (packaging/openwrt/, docs/openwrt.md). The page assets are not embedded: the
 * daemon reads them from `web/` and `browser/` beside the file (see src/node/daemon/asset-dirs.ts), which this
 * step fills from `dist/web/` and `dist/browser/` when they are built.
 */
import { build } from 'esbuild'
import { cpSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const outdir = `${root}dist/single`
const outfile = `${outdir}/malla.mjs`
const version = (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string }).version

rmSync(outdir, { recursive: true, force: true })
await build({
  absWorkingDir: root,
  entryPoints: ['src/node/cli/main.ts'],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  // Some dependencies are CommonJS and `require` Node's modules: an ES module has no `require` of its own.
  banner: { js: "import { createRequire as __mallaRequire } from 'node:module'; const require = __mallaRequire(import.meta.url);" },
  define: { MALLA_VERSION: JSON.stringify(version), MALLA_SINGLE_FILE: 'true' },
  logLevel: 'warning',
})
for (const name of ['web', 'browser']) {
  if (existsSync(`${root}dist/${name}`)) cpSync(`${root}dist/${name}`, `${outdir}/${name}`, { recursive: true })
}
process.stdout.write(`single file ${outfile.slice(root.length)}: ${(statSync(outfile).size / 1024).toFixed(0)} KiB (runs with \`node malla.mjs\`; web/ and browser/ beside it are optional)\n`)
