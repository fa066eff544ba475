import { cp, mkdir, readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { MallaError } from '../../core/errors.js'
import { compareStrings } from '../../core/order.js'
import { loadWebApp, WEB_DIR } from '../daemon/web-app.js'
import { assetBody } from '../daemon/static-asset.js'

/**
 * `malla build-static DIR`: the web app as plain files, for a router that cannot run Node. A LibreMesh
 * router serves them from its web root (uhttpd) and the app talks to its Lua shared-state CGI on the same
 * origin: no malla daemon anywhere. Returns the files written, by path under DIR, with their sizes.
 */
export async function buildStatic(dir: string, options: { force?: boolean; from?: string } = {}): Promise<Array<{ path: string; bytes: number; gzip: number }>> {
  const from = options.from ?? WEB_DIR
  const { app, error } = await loadWebApp(from)
  if (error !== undefined) throw new MallaError('NOT_FOUND', `the web app is not built (${error} in ${from}): run \`npm run build\` first`)
  const existing = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return []
    throw new MallaError('BAD_INPUT', `cannot use ${dir}: ${e.message}`)
  })
  if (existing.length > 0 && !options.force) throw new MallaError('BAD_INPUT', `${dir} is not empty; --force replaces the app's files there (index.html, assets/, favicon.svg)`)
  if ((await stat(dir).catch(() => undefined))?.isFile()) throw new MallaError('BAD_INPUT', `${dir} is a file`)
  // Old hashed assets would pile up with each upgrade on a router's small flash.
  if (options.force) await rm(join(dir, 'assets'), { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  const written: Array<{ path: string; bytes: number; gzip: number }> = []
  for (const [path, file] of app.files) {
    const target = join(dir, ...path.split('/'))
    await mkdir(join(target, '..'), { recursive: true })
    await cp(join(from, ...path.split('/')), target)
    const bytes = assetBody(file).length
    written.push({ path: path.slice(1), bytes, gzip: file.gzip?.length ?? bytes })
  }
  return written.sort((a, b) => compareStrings(a.path, b.path))
}
