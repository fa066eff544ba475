import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'

const IN_PAGE = fileURLToPath(new URL('./', import.meta.url))

/**
 * A conformance suite as it stands (test/conformance/), bundled for the browser from its in-page entry with
 * `node:test`, `node:assert/strict` and `node:timers/promises` swapped for in-page equivalents
 * (this folder), so the same suite that runs in Node runs against a page's own adapters (RTCPeerConnection,
 * IndexedDB). Dependencies are bundled in (a dynamic import too: one file a test can serve or inject).
 */
export async function suiteBundle(entry: string): Promise<string> {
  const out = await build({
    entryPoints: [`${IN_PAGE}${entry}`],
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

