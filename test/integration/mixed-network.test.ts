import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LuaRouterDouble } from '../helpers/lua-router-double.js'
import { startDaemon, tempDir } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

/**
 * A malla daemon beside stock LibreMesh routers (Lua shared-state): the types the network uses arrive even
 * though no Lua router ever starts a sync for them toward malla, and a write that comes back re-serialised by
 * json-c never replaces the original.
 */

async function table(base: string, type: string): Promise<Record<string, { data: unknown; author: string; bleachTTL: number; clock?: string }>> {
  const res = await fetch(`${base}/malla/v1/tables/${type}`)
  return (await res.json()) as never
}

test('LibreMesh\'s types, and types asked for, reach a malla node that only a Lua router holds them for', async (t) => {
  const lua = new LuaRouterDouble('W1')
  const luaUrl = (await lua.start()).replace(/\/$/, '')
  t.after(() => lua.stop())
  lua.tables.set('dnsmasq-hosts', { 'fd0d::1': { data: 'w1.thisnode.info', author: 'W1', bleachTTL: 30 } })
  lua.tables.set('my-app-type', { k: { data: 'v', author: 'W1', bleachTTL: 30 } })
  const m = await startDaemon(t, ['--data', await tempDir(t), '--name', 'M', '--peer', luaUrl, '--sync-interval', '1'])
  await waitFor(async () => (await table(m.base, 'dnsmasq-hosts'))['fd0d::1']?.data === 'w1.thisnode.info', 'dnsmasq-hosts from the Lua router')
  // A type in no list arrives once someone asks this daemon for it.
  assert.deepEqual(await table(m.base, 'my-app-type'), {})
  await waitFor(async () => (await table(m.base, 'my-app-type')).k?.data === 'v', 'an asked type from the Lua router')

  // The control: with no types configured, the Lua router's table never arrives.
  const bare = await startDaemon(t, ['--data', await tempDir(t), '--name', 'B', '--peer', luaUrl, '--sync-interval', '1', '--types', ''])
  await new Promise((r) => setTimeout(r, 2500))
  const held = await (await fetch(`${bare.base}/malla/v1/tables`)).json()
  assert.ok(!JSON.stringify(held).includes('dnsmasq-hosts'), JSON.stringify(held))
})

test('a write that comes back through a Lua router changed by json-c ({} as []) never replaces the original, even with a higher TTL', async (t) => {
  const lua = new LuaRouterDouble('W1')
  const luaUrl = (await lua.start()).replace(/\/$/, '')
  t.after(() => lua.stop())
  const m = await startDaemon(t, ['--data', await tempDir(t), '--name', 'M', '--peer', luaUrl, '--sync-interval', '1', '--types', 'nodes_and_links'])
  const res = await fetch(`${m.base}/malla/v1/tables/nodes_and_links/insert`, { method: 'POST', body: JSON.stringify({ M: { o: {}, links: ['W1'] } }) })
  assert.equal(res.status, 200)
  await waitFor(() => lua.tables.get('nodes_and_links')?.M !== undefined, 'the write on the Lua router')
  const copy = lua.tables.get('nodes_and_links')?.M as Record<string, unknown>
  assert.deepEqual(copy.data, { o: [], links: ['W1'] })
  // The Lua router's copy was bleached fewer times than the original: a higher TTL.
  copy.bleachTTL = 40
  await new Promise((r) => setTimeout(r, 2500))
  const mine = (await table(m.base, 'nodes_and_links')).M
  assert.deepEqual(mine?.data, { o: {}, links: ['W1'] })
  assert.equal(mine?.author, 'M')
})
