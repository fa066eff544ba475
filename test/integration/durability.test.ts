import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { runCli, startDaemon, tempDir } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

async function insert(base: string, type: string, values: Record<string, unknown>): Promise<Response> {
  return fetch(`${base}/malla/v1/tables/${type}/insert`, { method: 'POST', body: JSON.stringify(values), signal: AbortSignal.timeout(10_000) })
}

test('kill -9 during a burst of writes loses nothing that was acknowledged', async (t) => {
  const dir = await tempDir(t)
  const d = await startDaemon(t, ['--data', dir, '--name', 'K'])
  const acked: string[] = []
  let stop = false
  // Four writers in a loop, each key written once; the daemon is killed while they run.
  const writers = Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; !stop && i < 5000; i++) {
      const key = `w${w}-${i}`
      try {
        const res = await insert(d.base, 'burst', { [key]: { i, pad: 'x'.repeat(100) } })
        if (res.status === 200) acked.push(key)
      } catch {
        return // the daemon died mid-request: this write was never acknowledged
      }
    }
  })
  while (acked.length < 200) await new Promise((r) => setTimeout(r, 5))
  d.child.kill('SIGKILL')
  stop = true
  await Promise.all(writers)
  await d.stop()
  assert.ok(acked.length >= 200)
  // The killed daemon's pid is dead now: a temp file of its, as a kill during a whole save leaves one.
  await writeFile(join(dir, `burst.json.tmp-${d.child.pid}-killed`), '{"a":"whole copy"}')

  const again = await startDaemon(t, ['--data', dir, '--name', 'K'])
  const table = JSON.parse((await runCli(['get', 'burst', '--url', again.base])).stdout)
  const missing = acked.filter((k) => table[k] === undefined)
  assert.deepEqual(missing, [], `${missing.length} of ${acked.length} acknowledged writes lost`)
  // The restarted daemon can write again (a lock left by the killed one is taken over).
  assert.equal((await insert(again.base, 'burst', { after: 1 })).status, 200)
  const leftovers = (await readdir(dir)).filter((f) => f.includes('.tmp-'))
  assert.deepEqual(leftovers, [], 'temp files of the killed saves are removed at start')
  await again.waitForLog(/removed a temp file left by a killed save/)
})

test('unreadable table files are set aside at start, logged, and the daemon keeps every valid entry', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'broken.json'), '{"k":{"data":1,"author":"A","bleachT')
  await writeFile(join(dir, 'wrongshape.json'), '{"k":5,"ok":{"data":2,"author":"A","bleachTTL":4}}')
  await writeFile(join(dir, 'good.json'), '{"k":{"data":1,"author":"A","bleachTTL":7}}')
  const d = await startDaemon(t, ['--data', dir])
  await d.waitForLog(/unreadable parts of a table set aside.* table=ttl\/broken/)
  await d.waitForLog(/unreadable parts of a table set aside.* table=ttl\/wrongshape kept=1 unreadable=1/)
  const files = await readdir(dir)
  const aside = files.find((f) => /^broken\.json\.unreadable-/.test(f))
  assert.ok(aside, `set aside: ${files}`)
  assert.equal(await readFile(join(dir, aside), 'utf8'), '{"k":{"data":1,"author":"A","bleachT\n', 'kept byte for byte')
  assert.equal((await runCli(['get', 'broken', '--url', d.base])).stdout.trim(), '{}')
  assert.deepEqual(JSON.parse((await runCli(['get', 'wrongshape', '--url', d.base])).stdout), { ok: { data: 2, author: 'A', bleachTTL: 4 } })
  assert.equal(JSON.parse((await runCli(['get', 'good', '--url', d.base])).stdout).k.bleachTTL, 7)
  // The files are rewritten without their bad parts, so a restart finds nothing more to set aside.
  await waitFor(async () => (await readFile(join(dir, 'wrongshape.json'), 'utf8')) === '{"ok":{"data":2,"author":"A","bleachTTL":4}}', 'wrongshape.json is rewritten')
  await d.stop()
  const again = await startDaemon(t, ['--data', dir])
  await again.waitForLog(/ listening /)
  assert.equal(again.log.filter((l) => /unreadable/.test(l)).length, 0, again.log.join('\n'))
})

test('a full disk (ENOSPC) gives a clear error, keeps the old file intact, and the daemon recovers', async (t) => {
  // One cleanup, in order: the daemon, then the mount, then the directory (node runs `after` hooks first-in, first-out).
  const dir = await mkdtemp(join(tmpdir(), 'malla-enospc-'))
  const mnt = join(dir, 'small')
  await mkdir(mnt)
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=192k', 'tmpfs', mnt])
  let d: Awaited<ReturnType<typeof startDaemon>> | undefined
  t.after(async () => {
    await d?.stop('SIGKILL')
    execFileSync('umount', [mnt])
    await rm(dir, { recursive: true, force: true })
  })
  d = await startDaemon(t, ['--data', mnt, '--name', 'F'])
  const blob = 'y'.repeat(8000)
  // Each answer holds the entries just written: together they are the acknowledged table.
  const acknowledged: Record<string, unknown> = {}
  let refused: Response | undefined
  for (let i = 0; i < 100 && !refused; i++) {
    const res = await insert(d.base, 'big', { [`k${i}`]: blob })
    if (res.status === 200) Object.assign(acknowledged, await res.json())
    else refused = res
  }
  assert.ok(refused, 'the disk filled up')
  assert.equal(refused.status, 507)
  const error = (await refused.json()).error
  assert.equal(error.code, 'STORAGE')
  assert.match(error.message, /ENOSPC/)
  // What is stored (the table file plus its journal of small changes) is exactly the last acknowledged table.
  const stored = await runCli(['get', 'big', '--data', mnt])
  assert.equal(stored.code, 0, stored.stderr)
  assert.deepEqual(JSON.parse(stored.stdout), acknowledged, 'the disk holds exactly the acknowledged writes')
  assert.deepEqual((await readdir(mnt)).filter((f) => f.includes('.tmp-')), [], 'no temp file left behind')
  assert.deepEqual(JSON.parse((await runCli(['get', 'big', '--url', d.base])).stdout), acknowledged, 'memory is not ahead of the disk')
  // Room again (a table removed by hand): writes work again.
  await runCli(['bleach', 'big', '--url', d.base])
  execFileSync('sh', ['-c', `printf '{}' > ${join(mnt, 'big.json')}`])
  assert.equal((await insert(d.base, 'big', { small: 1 })).status, 200)
})

test('hooks get the whole table on stdin after substantial changes; failing and hanging hooks never block the daemon', async (t) => {
  const dir = await tempDir(t)
  const hooks = join(dir, 'hooks', 'demo')
  await mkdir(hooks, { recursive: true })
  const out = join(dir, 'hook-out')
  await writeFile(join(hooks, '10-record'), `#!/bin/sh\ncat >> ${out}\necho >> ${out}\n`, { mode: 0o755 })
  await writeFile(join(hooks, '20-fail'), '#!/bin/sh\necho "no route" >&2\nexit 3\n', { mode: 0o755 })
  await writeFile(join(hooks, '30-hang'), '#!/bin/sh\nsleep 60\n', { mode: 0o755 })
  await writeFile(join(hooks, 'README'), 'not executable: ignored\n', { mode: 0o644 })
  await writeFile(join(hooks, '05-env'), `#!/bin/sh\n{ pwd; env; } > ${join(dir, 'hook-env')}\n`, { mode: 0o755 })
  // Something of the daemon's environment that a hook must not see.
  process.env.MALLA_TEST_SECRET = 'not for hooks'
  const d = await startDaemon(t, ['--data', join(dir, 'data'), '--hooks', join(dir, 'hooks'), '--hook-timeout', '0.5']).finally(() => delete process.env.MALLA_TEST_SECRET)

  await runCli(['insert', 'demo', '--url', d.base], '{"a":1}')
  // While 30-hang runs, the daemon answers at once.
  const t0 = Date.now()
  assert.equal((await runCli(['get', 'demo', '--url', d.base])).code, 0)
  assert.ok(Date.now() - t0 < 3000)
  await d.waitForLog(/hook failed type=demo hook=\S+20-fail code=3 .*stderr="no route"/)
  await d.waitForLog(/hook killed after timeout type=demo hook=\S+30-hang/)
  const runs = (await readFile(out, 'utf8')).trim().split('\n')
  assert.equal(runs.length, 1)
  // A clean environment, in its type's directory: PATH and a locale, nothing of the daemon's.
  const [cwd, ...env] = (await readFile(join(dir, 'hook-env'), 'utf8')).trim().split('\n')
  assert.equal(cwd, hooks)
  const names = env.map((l) => l.split('=')[0] as string).filter((n) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(n)).sort()
  assert.deepEqual(names, ['LANG', 'PATH'], env.join('\n'))
  assert.deepEqual(Object.keys(JSON.parse(runs[0] as string)), ['a'])

  // A TTL-only change (bleach without drops) is not substantial: no hook round.
  await runCli(['bleach', 'demo', '--url', d.base])
  await runCli(['insert', 'demo', '--url', d.base], '{"b":2}')
  await d.waitForLog(/hook killed after timeout.*/)
  await new Promise((r) => setTimeout(r, 300))
  const lines = (await readFile(out, 'utf8')).trim().split('\n')
  assert.equal(lines.length, 2, 'one more round, for the insert only')
  assert.deepEqual(Object.keys(JSON.parse(lines[1] as string)).sort(), ['a', 'b'])
})

// lean: the data deflated too, as a router holds it.
for (const memory of ['fast', 'lean']) test(`a table large enough to be held packed keeps every entry through inserts, a bleach, a removal, a kill and a restart (--memory ${memory})`, async (t) => {
  const dir = await tempDir(t)
  const d = await startDaemon(t, ['--data', dir, '--name', 'P', '--bleach-interval', '3600', '--memory', memory])
  // 5,000 entries (the daemon packs TTL tables from 4,096), data of every JSON shape, some not ASCII.
  const data = (i: number) => (i % 5 === 0 ? `nodo-${i}-ñandú-✓` : i % 5 === 1 ? { i, nested: { list: [i, null, true] } } : i % 5 === 2 ? [i, `x${i}`] : i % 5 === 3 ? i * 1.5 : { empty: {}, pad: 'y'.repeat(120) })
  const expected: Record<string, unknown> = {}
  for (let from = 0; from < 5000; from += 2000) {
    const values = Object.fromEntries(Array.from({ length: Math.min(2000, 5000 - from) }, (_, j) => [`k${from + j}`, data(from + j)]))
    Object.assign(expected, values)
    assert.equal((await insert(d.base, 'big', values)).status, 200)
  }
  const api = (verb: string, body: unknown) => fetch(`${d.base}/malla/v1/tables/big/${verb}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) })
  assert.equal((await api('bleach', {})).status, 200)
  assert.equal((await insert(d.base, 'big', { fresh: 'after the bleach' })).status, 200)
  assert.equal((await api('remove', ['k7'])).status, 200)
  const read = async (base: string) => JSON.parse((await runCli(['get', 'big', '--url', base])).stdout) as Record<string, { data: unknown; bleachTTL: number; author: string }>
  const before = await read(d.base)
  assert.equal(Object.keys(before).length, 5001)
  for (const [key, value] of Object.entries(expected)) {
    if (key === 'k7') continue
    assert.deepEqual(before[key]?.data, value, key)
    assert.equal(before[key]?.bleachTTL, 29, `${key} was bleached once`)
  }
  assert.equal(before.fresh?.bleachTTL, 30)
  assert.equal(before.k7?.data ?? null, null, 'the removed key holds null')
  d.child.kill('SIGKILL')
  await d.stop()
  const again = await startDaemon(t, ['--data', dir, '--name', 'P', '--bleach-interval', '3600', '--memory', memory])
  assert.deepEqual(await read(again.base), before, 'the restarted daemon holds exactly the same table')
  assert.equal((await fetch(`${again.base}/malla/v1/tables/big/bleach`, { method: 'POST', body: '{}' })).status, 200)
  const after = await read(again.base)
  assert.equal(after.k4999?.bleachTTL, 28)
  assert.deepEqual(after.k4999?.data, expected.k4999)
})
