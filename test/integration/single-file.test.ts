import assert from 'node:assert/strict'
import { copyFile, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { runBounded, startDaemon, tempDir } from '../helpers/processes.js'

/** What `npm run build` writes for routers (scripts/build-single.ts). */
const SINGLE = fileURLToPath(new URL('../../dist/single/malla.mjs', import.meta.url))

test('the single-file build runs with node alone, copied into a directory with no node_modules', async (t) => {
  const dir = await tempDir(t, 'malla-single-')
  const file = join(dir, 'malla.mjs')
  await copyFile(SINGLE, file)
  assert.deepEqual(await readdir(dir), ['malla.mjs'], 'nothing beside the file: no node_modules, no package.json, no assets')

  const version = await runBounded(process.execPath, [file, '--version'], '', 15_000, 'malla.mjs --version', dir)
  assert.equal(version.code, 0, version.stderr)
  assert.equal(version.stdout.trim(), JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')).version)

  const daemon = await startDaemon(t, ['--data', join(dir, 'data'), '--name', 'single'], { cli: file, cwd: dir })
  try {
    // Written and read through the daemon's API by the same single file, as an operator on the router would.
    const put = await runBounded(process.execPath, [file, 'insert', 'solo', '--url', daemon.base], '{"k1":{"hello":"router"}}', 15_000, 'malla.mjs insert', dir)
    assert.equal(put.code, 0, put.stderr)
    const got = await runBounded(process.execPath, [file, 'get', 'solo', '--url', daemon.base], '', 15_000, 'malla.mjs get', dir)
    assert.equal(got.code, 0, got.stderr)
    const table = JSON.parse(got.stdout) as Record<string, { data: unknown; author: string }>
    assert.deepEqual(table.k1?.data, { hello: 'router' })
    assert.equal(table.k1?.author, 'single')
    // The LibreMesh endpoint answers from the same file too.
    const res = await fetch(`${daemon.base}/cgi-bin/shared-state/solo`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(10_000) })
    assert.equal(res.status, 200)
    assert.deepEqual((await res.json()).k1.data, { hello: 'router' })
    // No web app beside the file: the daemon says so and answers 404 at /, instead of failing to start.
    assert.equal((await fetch(`${daemon.base}/`, { signal: AbortSignal.timeout(10_000) })).status, 404)
    assert.ok(daemon.log.some((l) => /web app not built/.test(l)))
  } finally {
    await daemon.stop()
  }
})
