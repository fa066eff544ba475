import { readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import { assetDir } from './asset-dirs.js'
import { MallaError } from '../../core/errors.js'
import { sendAsset, staticAsset, type StaticAsset } from './static-asset.js'

/**
 * Where `npm run build` writes the bundle (scripts/build-browser.ts). The daemon module is at
 * `src/node/daemon/` or `dist/node/daemon/`, so the package's `dist/browser/` is three levels up from
 * either: a daemon run from source (tsx) serves the same built file as the installed one.
 */
export const BUNDLE_DIR = assetDir('browser')

/** The files served, by name under `/`. */
const FILES = {
  'malla.js': 'text/javascript; charset=utf-8',
  'malla.js.map': 'application/json; charset=utf-8',
  // Trystero's API over malla (src/browser/trystero): what a Trystero app imports instead of 'trystero'.
  'malla-trystero.js': 'text/javascript; charset=utf-8',
  'malla-trystero.js.map': 'application/json; charset=utf-8',
} as const
export type BundleFile = keyof typeof FILES

/** The page bundle as read at start; files missing then stay missing until a restart. */
export interface BrowserBundle {
  readonly dir: string
  readonly assets: ReadonlyMap<BundleFile, StaticAsset>
}

export function isBundleFile(name: string): name is BundleFile {
  return Object.hasOwn(FILES, name)
}

/**
 * Reads the bundle and its source map once. A file that cannot be read is left out (the caller warns):
 * a daemon without a bundle still serves everything else.
 */
export async function loadBrowserBundle(dir: string = BUNDLE_DIR): Promise<{ bundle: BrowserBundle; missing: Array<{ path: string; error: string }> }> {
  const assets = new Map<BundleFile, StaticAsset>()
  const missing: Array<{ path: string; error: string }> = []
  for (const [name, contentType] of Object.entries(FILES) as Array<[BundleFile, string]>) {
    const path = join(dir, name)
    try {
      assets.set(name, staticAsset(await readFile(path), contentType))
    } catch (e) {
      missing.push({ path, error: (e as NodeJS.ErrnoException).code ?? (e as Error).message })
    }
  }
  return { bundle: { dir, assets }, missing }
}

/**
 * `GET /malla.js` and `/malla.js.map`. The names carry no content hash, so a cached copy must be
 * revalidated on every load (`no-cache`): after a router upgrade pages get the new bundle at once, and
 * until then each load costs a 304 of a few bytes. Any origin may load it (`*`): a page served by one
 * router may import the bundle from another, and it holds nothing private.
 */
export function serveBundleFile(bundle: BrowserBundle | undefined, name: BundleFile, req: IncomingMessage, res: ServerResponse): void {
  const asset = bundle?.assets.get(name)
  if (!asset) {
    const dir = bundle?.dir ?? BUNDLE_DIR
    throw new MallaError('NOT_FOUND', `the browser bundle is not built: run \`npm run build\` (no ${join(dir, name)} when the daemon started)`)
  }
  sendAsset(asset, { 'cache-control': 'no-cache', 'access-control-allow-origin': '*' }, req, res)
}
