import { readdir, readFile, stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { extname, join, relative, sep } from 'node:path'
import { assetDir } from './asset-dirs.js'
import { MallaError } from '../../core/errors.js'
import { sendAsset, staticAsset, type StaticAsset } from './static-asset.js'

/**
 * Where `npm run build` writes the web app (scripts/build-web.ts): the package's `dist/web/`, three levels
 * up from this module whether it runs from `src/` (tsx) or `dist/`.
 */
export const WEB_DIR = assetDir('web')

/** The built app is a few dozen files; a directory far beyond that is not the app, and is not read into memory. */
const MAX_FILES = 200
const MAX_TOTAL_BYTES = 16 * 1024 * 1024

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
}

interface WebFile extends StaticAsset {
  /** Vite names assets by content hash: those never change under their name and may be cached for good. */
  readonly immutable: boolean
}

/** The web app as read at start, by URL path (`/index.html`, `/assets/index-3f2a.js`). */
export interface WebApp {
  readonly dir: string
  readonly files: ReadonlyMap<string, WebFile>
}

/**
 * Reads the built app once. A missing directory gives an empty app (the caller warns, and `/` explains
 * how to build it); the daemon serves everything else either way.
 */
export async function loadWebApp(dir: string = WEB_DIR): Promise<{ app: WebApp; error?: string }> {
  const files = new Map<string, WebFile>()
  let total = 0
  const walk = async (at: string): Promise<void> => {
    for (const item of await readdir(at, { withFileTypes: true })) {
      // Vite's manifest (.vite/) and any other hidden file are the build's, not the app's.
      if (item.name.startsWith('.')) continue
      const path = join(at, item.name)
      if (item.isDirectory()) {
        await walk(path)
        continue
      }
      if (!item.isFile()) continue
      const type = TYPES[extname(item.name)]
      if (type === undefined) continue
      if (files.size >= MAX_FILES) throw new MallaError('TOO_LARGE', `more than ${MAX_FILES} files`)
      total += (await stat(path)).size
      if (total > MAX_TOTAL_BYTES) throw new MallaError('TOO_LARGE', `more than ${MAX_TOTAL_BYTES} bytes`)
      const urlPath = '/' + relative(dir, path).split(sep).join('/')
      files.set(urlPath, { ...staticAsset(await readFile(path), type, !type.startsWith('image/png')), immutable: urlPath.startsWith('/assets/') })
    }
  }
  try {
    await walk(dir)
  } catch (e) {
    const error = (e as NodeJS.ErrnoException).code ?? (e as Error).message
    return { app: { dir, files: new Map() }, error }
  }
  return { app: { dir, files }, ...(files.has('/index.html') ? {} : { error: 'no index.html' }) }
}

/** Whether `pathname` names a file of the app (`/` is its index). */
export function isWebPath(app: WebApp | undefined, pathname: string): boolean {
  return pathname === '/' || (app?.files.has(pathname) ?? false)
}

/**
 * What the app may load and run: its own files only (WebAssembly for hashing files; no inline script or style,
 * nothing from elsewhere, no plugin, no framing by another page). Pages on the mesh take everything from the
 * router, so anything else is an injection. The same policy is in the app's index.html as a meta tag, for
 * routers that send no header (the static build on a LibreMesh router); `frame-ancestors` works only here.
 */
export const CONTENT_SECURITY_POLICY = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
}

/**
 * Serves one file of the app. `index.html` is revalidated on every load (`no-cache`), so pages get a new
 * app right after a router upgrade; the hashed assets it names are cached for a year.
 */
export function serveWebFile(app: WebApp | undefined, pathname: string, req: IncomingMessage, res: ServerResponse): void {
  const file = app?.files.get(pathname === '/' ? '/index.html' : pathname)
  if (!file) throw new MallaError('NOT_FOUND', `the web app is not built: run \`npm run build\` (no ${join(app?.dir ?? WEB_DIR, 'index.html')} when the daemon started); the developer pages are at /debug/`)
  sendAsset(file, { 'cache-control': file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache', ...SECURITY_HEADERS }, req, res)
}
