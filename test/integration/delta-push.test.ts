import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LuaRouterDouble } from '../helpers/lua-router-double.js'
import { freePort, runCli, startDaemon, tempDir } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

test('between malla daemons a change travels as a small delta push, whatever the table size', async (t) => {
  const c = await startDaemon(t, ['--data', await tempDir(t), '--name', 'C', '--verbose'])
  const b = await startDaemon(t, ['--data', await tempDir(t), '--name', 'B', '--verbose', '--peer', c.base])
  const a = await startDaemon(t, ['--data', await tempDir(t), '--name', 'A', '--verbose', '--peer', b.base])
  // 2,000 entries of about 200 bytes: more than one sync page, which goes in several, with the default body limit.
  const big = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`host-${i}`, { ip: `10.0.${i >> 8}.${i & 255}`, pad: 'x'.repeat(150) }]))
  assert.equal((await runCli(['insert', 'hosts', '--url', a.base], JSON.stringify(big))).code, 0)
  await waitFor(async () => Object.keys(JSON.parse((await runCli(['get', 'hosts', '--url', c.base])).stdout)).length === 2000, 'C holds the 2,000 entries')
  await a.waitForLog(/neighbour speaks malla peer=/)
  await b.waitForLog(/neighbour speaks malla peer=/)

  const from = a.log.length
  await runCli(['insert', 'hosts', '--url', a.base], '{"new-host":"10.9.9.9"}')
  await c.waitForLog(/changed type=hosts keys=1 /)
  await waitFor(async () => a.log.slice(from).some((l) => / pushed type=hosts .*sent=\d+/.test(l)), 'A pushed the new entry')
  const pushed = a.log.slice(from).find((l) => / pushed type=hosts .*sent=\d+/.test(l)) as string
  const sent = Number((/sent=(\d+)/.exec(pushed) as RegExpExecArray)[1])
  assert.ok(sent < 2048, `one entry pushed in ${sent} bytes`)
  await c.waitForLog(/served push flavour=ttl type=hosts .*keys=1 changed=1/)
  const atC = JSON.parse((await runCli(['get', 'hosts', '--url', c.base])).stdout)
  assert.equal(atC['new-host'].data, '10.9.9.9')
  assert.equal(Object.keys(atC).length, 2001)
})

test('a LibreMesh router gets full-table syncs once its first answer says what it is', async (t) => {
  const lua = new LuaRouterDouble('W1')
  const luaBase = await lua.start()
  t.after(() => lua.stop())
  lua.insert('hosts', { w1: 'x' })
  lua.insert('other', { w2: 'y' })
  const m = await startDaemon(t, ['--data', await tempDir(t), '--name', 'M', '--peer', luaBase])
  await runCli(['insert', 'other', '--url', m.base], '{"o1":1}')
  await runCli(['insert', 'hosts', '--url', m.base], '{"m1":1}')
  await m.waitForLog(/neighbour speaks LibreMesh only/)
  // The first change went as a push, which a LibreMesh router answers as any sync (a partial table is one):
  // both sides hold both tables' entries; from then on it gets whole tables only.
  await waitFor(async () => lua.tables.get('hosts')?.m1 !== undefined && lua.tables.get('other')?.o1 !== undefined, 'the LibreMesh router has what M wrote')
  await waitFor(async () => JSON.parse((await runCli(['get', 'hosts', '--url', m.base])).stdout).w1?.data === 'x', 'M has the LibreMesh router\'s entry')
  const pushes = lua.pushRequests
  assert.ok(pushes <= 1, `at most the first exchange was a push (${pushes})`)
  await runCli(['insert', 'hosts', '--url', m.base], '{"m2":2}')
  await m.waitForLog(/changed type=hosts keys=1 origin=local/)
  for (let i = 0; i < 100 && lua.tables.get('hosts')?.m2 === undefined; i++) await new Promise((r) => setTimeout(r, 20))
  assert.equal(lua.tables.get('hosts')?.m2?.data, 2)
  assert.equal(lua.pushRequests, pushes, 'no push once it is known to speak LibreMesh only')
  const peers = (await runCli(['peers', '--url', m.base])).stdout.trim().split('\n').map((l) => JSON.parse(l))
  assert.deepEqual(peers.map((p) => [p.base, p.malla]), [[luaBase, false]])
})

test('a push answers only real corrections: {} for a copy it already holds, its own copy where it wins', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--name', 'D'])
  await runCli(['insert', 'hosts', '--url', d.base], '{"k":"ours"}')
  const stored = JSON.parse((await runCli(['get', 'hosts', '--url', d.base])).stdout).k
  const push = (body: unknown) =>
    fetch(`${d.base}/cgi-bin/shared-state/hosts`, { method: 'POST', headers: { 'x-malla-sync': 'push' }, body: JSON.stringify(body) })
  const same = await push({ k: { ...stored } })
  assert.equal(same.headers.get('x-malla'), '1')
  assert.deepEqual(await same.json(), {})
  const stale = await push({ k: { ...stored, data: 'older', clock: '1' } })
  assert.deepEqual((await stale.json()).k.data, 'ours')
})

test('a router whose neighbour was down tries it again as soon as the neighbour calls, not after its backoff', async (t) => {
  const portA = await freePort()
  const baseA = `http://127.0.0.1:${portA}`
  // B starts first, and keeps failing to reach A: its pause between tries grows (250 ms doubling, to 5 s).
  // (No LibreMesh types to sync: its tries are then one table each, malla-links, and counted by it.)
  const b = await startDaemon(t, ['--data', await tempDir(t), '--name', 'B', '--peer', baseA, '--verbose', '--types', ''])
  await waitFor(() => b.log.filter((l) => /reconcile failed type=malla-links/.test(l)).length >= 5, 'B failed five times', 15_000)
  // Its next try is 4 s away now. A starts, knowing no neighbour itself: it never calls B on its own.
  const peersOfB = async () => (await runCli(['peers', '--url', b.base])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { base: string; malla?: boolean; name?: string })
  await startDaemon(t, ['--data', await tempDir(t), '--name', 'A', '--port', String(portA)])
  assert.deepEqual((await peersOfB()).map((p) => [p.base, p.malla ?? null]), [[baseA, null]], 'B has not reached A yet')
  // A request from A's address, as a malla node sends it (its name in x-malla-name): B tries A at once.
  const res = await fetch(`${b.base}/cgi-bin/shared-state/hello`, { method: 'POST', headers: { 'x-malla-name': 'A' }, body: '{}' })
  assert.equal(res.status, 200)
  await waitFor(async () => (await peersOfB()).some((p) => p.base === baseA && p.malla === true && p.name === 'A'), 'B knows A speaks malla, and its name, well before its next try', 1500)
})
