import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LuaRouterDouble } from '../helpers/lua-router-double.js'
import { freePort, post, runCli, startDaemon, tempDir } from '../helpers/processes.js'

async function getTable(base: string, type: string): Promise<Record<string, { data: unknown; author: string; bleachTTL: number; clock?: string }>> {
  const r = await runCli(['get', type, '--url', base])
  assert.equal(r.code, 0, r.stderr)
  return JSON.parse(r.stdout)
}

test('a change spreads along a chain of real daemons at once, and removals spread too', async (t) => {
  const c = await startDaemon(t, ['--data', await tempDir(t), '--name', 'C'])
  const b = await startDaemon(t, ['--data', await tempDir(t), '--name', 'B', '--peer', c.base])
  const a = await startDaemon(t, ['--data', await tempDir(t), '--name', 'A', '--peer', b.base])
  const ins = await runCli(['insert', 'demo', '--url', a.base], '{"hello":"world","n":1}')
  assert.equal(ins.code, 0, ins.stderr)
  await c.waitForLog(/changed type=demo keys=2/)
  const atC = await getTable(c.base, 'demo')
  assert.equal(atC.hello?.data, 'world')
  assert.equal(atC.hello?.author, 'A')
  assert.match(atC.hello?.clock ?? '', /^[1-9][0-9]*$/)

  assert.equal((await runCli(['remove', 'demo', '--url', a.base], '["hello"]')).code, 0)
  await c.waitForLog(/changed type=demo keys=1/)
  assert.equal((await getTable(c.base, 'demo')).hello?.data, null)
})

test('newer data wins over a stale copy with a higher TTL between malla daemons (LibreMesh\'s fault, fixed)', async (t) => {
  const b = await startDaemon(t, ['--data', await tempDir(t), '--name', 'B'])
  const a = await startDaemon(t, ['--data', await tempDir(t), '--name', 'A', '--peer', b.base])
  await runCli(['insert', 'demo', '--url', a.base, '--ttl', '30'], '{"k":"old"}')
  await b.waitForLog(/changed type=demo/)
  // B keeps this copy of the old write at TTL 30 (say it was offline), while A writes newer data and bleaches it to 29.
  const stale = (await getTable(b.base, 'demo')).k
  assert.equal(stale?.data, 'old')
  await runCli(['insert', 'demo', '--url', a.base], '{"k":"new"}')
  await runCli(['bleach', 'demo', '--url', a.base])
  const fresh = await getTable(a.base, 'demo')
  assert.equal(fresh.k?.data, 'new')
  assert.equal(fresh.k?.bleachTTL, 29)
  // The stale copy comes back the LibreMesh way (a full-table POST), with the higher TTL.
  const r = await post(`${a.base}/cgi-bin/shared-state/demo`, JSON.stringify({ k: stale }))
  assert.equal(JSON.parse(r.text).k.data, 'new', 'the stale copy must not win by TTL alone')
  // Without malla's clock, LibreMesh's rule applies unchanged: the higher TTL wins.
  const { clock: _clock, ...plain } = stale!
  const r2 = await post(`${a.base}/cgi-bin/shared-state/demo`, JSON.stringify({ k: plain }))
  assert.equal(JSON.parse(r2.text).k.data, 'old')
})

test('periodic sync heals a daemon that missed a push', async (t) => {
  const b = await startDaemon(t, ['--data', await tempDir(t), '--name', 'B'])
  const dirA = await tempDir(t)
  // A starts with data already on disk (written while it was down) and a short sync period.
  const w = await runCli(['insert', 'demo', '--data', dirA, '--name', 'A'], '{"offline":"write"}')
  assert.equal(w.code, 0, w.stderr)
  await startDaemon(t, ['--data', dirA, '--name', 'A', '--peer', b.base, '--sync-interval', '0.3'])
  await b.waitForLog(/changed type=demo keys=1/)
  assert.equal((await getTable(b.base, 'demo')).offline?.data, 'write')
})

test('a daemon syncs with a plain LibreMesh router and copes with its quirks and faults', async (t) => {
  const lua = new LuaRouterDouble('W1')
  const luaBase = await lua.start()
  t.after(() => lua.stop())
  lua.insert('hosts', { 'fe80::1': 'w1.lan', gone: 'x', obj: {} })
  lua.tables.get('hosts')!.gone = { author: 'W1', bleachTTL: 30 } // a Lua removal: no data field
  const m = await startDaemon(t, ['--data', await tempDir(t), '--name', 'M', '--peer', luaBase, '--timeout', '1'])

  await runCli(['insert', 'hosts', '--url', m.base], '{"10.0.0.2":"m.lan","path":"a/b"}')
  await m.waitForLog(/changed type=hosts keys=3 origin=local/)
  const mine = await getTable(m.base, 'hosts')
  assert.equal(mine['fe80::1']?.data, 'w1.lan')
  assert.equal(mine.gone?.data, null)
  assert.deepEqual(mine.obj?.data, [])
  const atLua = lua.tables.get('hosts')!
  assert.equal(atLua['10.0.0.2']?.data, 'm.lan')
  assert.match(String(atLua['10.0.0.2']?.clock), /^[0-9]+$/, 'the Lua router keeps malla\'s clock field whole')

  // Errors as an empty 200: no data, nothing lost, logged.
  lua.mode = 'empty-200'
  await runCli(['insert', 'hosts', '--url', m.base], '{"later":1}')
  await m.waitForLog(/sync answer unusable type=hosts/)
  lua.mode = 'garbage'
  await runCli(['insert', 'hosts', '--url', m.base], '{"later2":1}')
  await m.waitForLog(/answer is not JSON/)
  // A router that never answers is abandoned after --timeout.
  lua.mode = 'hang'
  const started = Date.now()
  await runCli(['insert', 'hosts', '--url', m.base], '{"later3":1}')
  await m.waitForLog(/sync failed type=hosts .*within 1000 ms/)
  assert.ok(Date.now() - started < 5000)
  const final = await getTable(m.base, 'hosts')
  for (const k of ['10.0.0.2', 'fe80::1', 'later', 'later2', 'later3']) assert.ok(final[k], `${k} kept`)
})

test('the CLI syncs a data directory with endpoint URLs, gzip included, and reports a dead peer', async (t) => {
  const lua = new LuaRouterDouble('W1')
  const luaBase = await lua.start()
  t.after(() => lua.stop())
  lua.insert('bat-hosts', { 'aa:bb': 'w1_wlan0' })
  const dir = await tempDir(t)
  await runCli(['insert', 'bat-hosts', '--data', dir, '--name', 'M'], '{"cc:dd":"m_eth0"}')
  const ok = await runCli(['sync', 'bat-hosts', '--data', dir, `${luaBase}/cgi-bin/shared-state/bat-hosts?gzip`])
  assert.equal(ok.code, 0, ok.stderr)
  assert.equal(lua.tables.get('bat-hosts')?.['cc:dd']?.data, 'm_eth0')
  const local = JSON.parse((await runCli(['get', 'bat-hosts', '--data', dir])).stdout)
  assert.equal(local['aa:bb'].data, 'w1_wlan0')

  const dead = await runCli(['sync', 'bat-hosts', '--data', dir, '--timeout', '1', `http://127.0.0.1:${await freePort()}/cgi-bin/shared-state/bat-hosts`])
  assert.equal(dead.code, 69)
  assert.match(dead.stderr, /ECONNREFUSED/)
})
