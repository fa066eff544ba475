import assert from 'node:assert/strict'
import { test } from 'node:test'
import { libremeshGraph, readMapTables } from '../../src/web/app/libremesh-map.js'
import { UbusClient } from '../../src/web/app/ubus-client.js'
import { MAP_TABLES, routerAsyncDaemon } from '../helpers/libremesh-map-fixture.js'
import { LuaRouterDouble } from '../helpers/lua-router-double.js'
import { RpcdDouble } from '../helpers/rpcd-double.js'
import { startDaemon, tempDir } from '../helpers/processes.js'

type RoomLike = Parameters<typeof readMapTables>[0]
const roomAt = (url: string, kind: 'malla' | 'libremesh') => ({ router: { url, kind, name: undefined, stunUrls: [] } }) as unknown as RoomLike

test('LibreMesh\'s tables become routers at their coordinates and links with their quality', () => {
  const g = libremeshGraph(MAP_TABLES)
  const at = Object.fromEntries(g.nodes.map((n) => [n.label, n.at]))
  assert.deepEqual(at, { 'LiMe-a': [-31.8, -64.5], 'LiMe-b': [-31.8, -64.4], 'LiMe-c': [-31.72, -64.45] })
  const q = Object.fromEntries(g.edges.map((e) => [`${e.a} ${e.b}`, e.quality?.toFixed(2)]))
  // a—b: the better end's signal, -45 dBm; b—c: -80 dBm; a—c: batman-adv TQ 204 of 255, published by c alone,
  // its far end found by the MAC that LiMe-a lists in node_info.
  assert.deepEqual(q, { 'router:LiMe-a router:LiMe-b': '0.75', 'router:LiMe-b router:LiMe-c': '0.17', 'router:LiMe-a router:LiMe-c': '0.80' })
})

test('the older layouts, unset coordinates and junk from the network are read without harm', () => {
  const g = libremeshGraph({
    node_info: { x: { coordinates: { lat: 'FIXME', long: 'FIXME' } }, y: 'junk', z: { coordinates: { lat: 91, long: 0 } } },
    // bat_links_info as an array of links per router (tests/sample.json of lime-packages).
    bat_links_info: {
      x: [{ src_mac: '02:00:00:00:00:01', dst_mac: '02:00:00:00:00:02', tq: 255 }],
      w: [{ src_mac: '02:00:00:00:00:02', dst_mac: '02:00:00:00:00:01', tq: 100 }, 'junk'],
    },
    wifi_links_info: { v: { links: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, { signal: -50 }])) } },
  })
  assert.ok(g.nodes.every((n) => n.at === undefined))
  assert.deepEqual(g.edges.map((e) => [e.a, e.b, e.quality]), [['router:w', 'router:x', 1]])
})

test('on a router with no malla daemon, the tables come through its /ubus (lime-app login, rpcd\'s shared-state-async get)', async (t) => {
  const asyncDaemon = routerAsyncDaemon()
  const rpcd = new RpcdDouble({ asyncPort: await asyncDaemon.start(), sessionTimeoutMs: 300 })
  t.after(() => asyncDaemon.stop())
  const router = new LuaRouterDouble('LiMe-a')
  const url = (await router.start({ ubus: (body) => rpcd.answer(body) })).replace(/\/$/, '')
  t.after(() => router.stop())
  const ubus = new UbusClient(`${url}/ubus`)
  const tables = await readMapTables(roomAt(url, 'libremesh'), ubus)
  assert.deepEqual(tables.node_info, MAP_TABLES.node_info)
  assert.deepEqual(tables.wifi_links_info, MAP_TABLES.wifi_links_info)
  // A type the router's daemon does not hold: empty, not an error.
  assert.deepEqual(tables.babel_links_info, {})
  assert.equal(rpcd.logins, 1)
  // The session expired: the client logs in again once and goes on.
  await new Promise((r) => setTimeout(r, 400))
  assert.deepEqual((await readMapTables(roomAt(url, 'libremesh'), ubus)).node_info, MAP_TABLES.node_info)
  assert.equal(rpcd.logins, 2)
  // A wrong password is refused as rpcd refuses it.
  assert.match(await rpcd.answer(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'call', params: ['0'.repeat(32), 'session', 'login', { username: 'lime-app', password: 'x' }] })), /"result":\[6\]/)
  assert.match(await rpcd.answer(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'call', params: ['f'.repeat(32), 'shared-state-async', 'get', { data_type: 'node_info' }] })), /Access denied/)
})

test('with a malla daemon, the tables come from its API, and asking for them makes it sync them', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--name', 'LiMe-a'])
  const res = await fetch(`${d.base}/malla/v1/tables/node_info/insert`, { method: 'POST', body: JSON.stringify(MAP_TABLES.node_info) })
  assert.equal(res.status, 200)
  const tables = await readMapTables(roomAt(d.base, 'malla'), new UbusClient(`${d.base}/ubus`))
  assert.deepEqual(tables.node_info, MAP_TABLES.node_info)
  assert.deepEqual(tables.wifi_links_info, {})
})
