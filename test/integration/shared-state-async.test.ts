import assert from 'node:assert/strict'
import { test } from 'node:test'
import { encodeFrame, u32 } from '../../src/sync/async/async-frames.js'
import { decodeSlice, EMPTY_SLICE, encodeSlice } from '../../src/sync/async/state-slice.js'
import { rawAsyncClient, within } from '../helpers/async-raw-client.js'
import { AsyncNodeDouble } from '../helpers/async-node-double.js'
import { LuaRouterDouble } from '../helpers/lua-router-double.js'
import { startDaemon, tempDir, type RunningDaemon } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

/** Starts `malla peer` serving shared-state-async on a free port; resolves with the daemon and that port. */
async function asyncDaemon(t: Parameters<typeof startDaemon>[0], args: string[]): Promise<{ d: RunningDaemon; port: number }> {
  const dir = await tempDir(t)
  const d = await startDaemon(t, ['--data', dir, '--async-port', '0', ...args])
  const port = Number(/shared-state-async listening port=(\d+)/.exec(await d.waitForLog(/shared-state-async listening/))?.[1])
  return { d, port }
}

async function table(base: string, type: string): Promise<Record<string, { data: unknown; author: string; bleachTTL: number }>> {
  const res = await fetch(`${base}/malla/v1/tables/${type}`)
  return (await res.json()) as never
}

async function insert(base: string, type: string, values: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${base}/malla/v1/tables/${type}/insert`, { method: 'POST', body: JSON.stringify(values) })
  assert.equal(res.status, 200, await res.text())
}

const rawClient = (t: { after(fn: () => unknown): void }, port: number) => rawAsyncClient(t, '127.0.0.1', port)
const withTimeout = within

test('a C++-style client: handshake (echo in host byte order), its entry merged, the whole state answered, golden read', async (t) => {
  const { d, port } = await asyncDaemon(t, ['--async-types', 'bat-hosts'])
  const { socket, reader } = await rawClient(t, port)
  socket.write(u32(1))
  assert.equal((await reader.read(4)).toString('hex'), '00000001')
  // shared-state-async's client applies htonl twice to its echo: on x86 it goes out as 01 00 00 00.
  socket.write(Uint8Array.of(1, 0, 0, 0))
  const frame = encodeFrame('bat-hosts', encodeSlice([['02:ab:cd:00:00:01', { author: 'cpp-node', ttl: 2431, data: 'cpp-node_wlan0' }]]))
  socket.write(frame)
  assert.equal((await reader.read(4)).readUInt32BE(0), frame.length)
  const nameLength = (await reader.read(1))[0] as number
  assert.equal((await reader.read(nameLength)).toString(), 'bat-hosts')
  const dataLength = (await reader.read(4)).readUInt32BE(0)
  const reply = decodeSlice((await reader.read(dataLength)).toString())
  socket.write(u32(1 + nameLength + 4 + dataLength))
  assert.equal(reply.get('02:ab:cd:00:00:01')?.data, 'cpp-node_wlan0')
  assert.equal(reply.get('02:ab:cd:00:00:01')?.author, 'cpp-node')
  // Kept exact: the same seconds go back out (give or take the second that passed).
  assert.ok((reply.get('02:ab:cd:00:00:01')?.ttl ?? 0) >= 2430)
  // malla's table holds it in bleach rounds of its 120 s: 2431 s are 20 rounds.
  const stored = (await table(d.base, 'bat-hosts'))['02:ab:cd:00:00:01']
  assert.deepEqual([stored?.data, stored?.author, stored?.bleachTTL], ['cpp-node_wlan0', 'cpp-node', 20])

  // The CLI's read (`shared-state-async get bat-hosts`): the 31-byte frame, acknowledged with 00 00 00 1f.
  const read = await rawClient(t, port)
  read.socket.write(u32(1))
  await read.reader.read(4)
  read.socket.write(u32(1))
  read.socket.write(encodeFrame('bat-hosts', EMPTY_SLICE))
  assert.equal((await read.reader.read(4)).toString('hex'), '0000001f')
  const n = (await read.reader.read(1))[0] as number
  await read.reader.read(n)
  const len = (await read.reader.read(4)).readUInt32BE(0)
  assert.equal(decodeSlice((await read.reader.read(len)).toString()).size, 1)
  read.socket.write(u32(1 + n + 4 + len))
  await withTimeout(read.closed, 5000, 'server closing after the exchange')
})

test('refused as the C++ daemon refuses: other versions, unregistered types, oversized names and data; the daemon goes on', async (t) => {
  const { port } = await asyncDaemon(t, ['--async-types', 'bat-hosts'])
  const handshake = async () => {
    const c = await rawClient(t, port)
    c.socket.write(u32(1))
    await c.reader.read(4)
    c.socket.write(u32(1))
    return c
  }
  // Version 2: closed with no answer.
  const v2 = await rawClient(t, port)
  v2.socket.write(u32(2))
  await withTimeout(v2.closed, 5000, 'close after version 2')
  await assert.rejects(v2.reader.read(4))
  // A type this node does not speak: closed right after the name, no acknowledgement.
  const unknown = await handshake()
  unknown.socket.write(encodeFrame('dnsmasq-hosts', EMPTY_SLICE))
  await withTimeout(unknown.closed, 5000, 'close after an unregistered type')
  await assert.rejects(unknown.reader.read(4))
  // A name of 0 bytes, and data declared past 1 MiB: closed before any data is read.
  const noName = await handshake()
  noName.socket.write(Uint8Array.of(0))
  await withTimeout(noName.closed, 5000, 'close after a 0-byte name')
  const big = await handshake()
  big.socket.write(Buffer.concat([Uint8Array.of(9), Buffer.from('bat-hosts'), u32(1024 * 1024 + 1)]))
  await withTimeout(big.closed, 5000, 'close after a data length over 1 MiB')
  // Invalid JSON in a well-formed frame: acknowledged (the bytes arrived), then closed without an answer.
  const garbage = await handshake()
  garbage.socket.write(encodeFrame('bat-hosts', '{"stateSlice":[{"key":1}]}'))
  await garbage.reader.read(4)
  await withTimeout(garbage.closed, 5000, 'close after a bad slice')
  await assert.rejects(garbage.reader.read(1))
  // And a good exchange still works.
  const good = await handshake()
  good.socket.write(encodeFrame('bat-hosts', EMPTY_SLICE))
  assert.equal((await good.reader.read(4)).readUInt32BE(0), 31)
  assert.equal((await good.reader.read(1))[0], 9)
})

test('a connection that stalls is closed, and does not hold up anyone else meanwhile', async (t) => {
  const { d, port } = await asyncDaemon(t, ['--async-types', 'bat-hosts'])
  const stalled = await rawClient(t, port)
  stalled.socket.write(u32(1))
  await stalled.reader.read(4)
  // Half a frame, then nothing.
  stalled.socket.write(Uint8Array.of(9))
  const other = await rawClient(t, port)
  other.socket.write(u32(1))
  await other.reader.read(4)
  other.socket.write(u32(1))
  other.socket.write(encodeFrame('bat-hosts', encodeSlice([['k', { author: 'c', ttl: 500, data: 1 }]])))
  assert.equal((await other.reader.read(4)).readUInt32BE(0), encodeFrame('bat-hosts', encodeSlice([['k', { author: 'c', ttl: 500, data: 1 }]])).length)
  assert.equal((await table(d.base, 'bat-hosts')).k?.data, 1)
  await withTimeout(stalled.closed, 15_000, 'closing a stalled exchange')
})

test('two malla daemons over shared-state-async: a write on either side reaches the other', async (t) => {
  const a = await asyncDaemon(t, ['--name', 'A', '--async-types', 'bat-hosts,node_info'])
  const bDir = await tempDir(t)
  // B has no port of its own: it syncs out, once a second here, and right after each change.
  const b = await startDaemon(t, ['--data', bDir, '--name', 'B', '--async-peer', `127.0.0.1:${a.port}`, '--async-types', 'bat-hosts:1,node_info:1'])
  await insert(b.base, 'bat-hosts', { 'mac-b': 'B_eth0' })
  await waitFor(async () => (await table(a.d.base, 'bat-hosts'))['mac-b']?.data === 'B_eth0', 'B\'s write on A')
  await insert(a.d.base, 'node_info', { A: { coordinates: { lat: -31.8, long: -64.5 } } })
  await waitFor(async () => (await table(b.base, 'node_info')).A !== undefined, 'A\'s write on B')
  const onA = (await table(a.d.base, 'bat-hosts'))['mac-b']
  assert.equal(onA?.author, 'B')
  // The clock stays behind: only author, TTL and data cross.
  assert.equal((onA as Record<string, unknown> | undefined)?.clock, undefined)
  // An update of B's write replaces the old one on A (more seconds left: a later write).
  await insert(b.base, 'bat-hosts', { 'mac-b': 'B_eth1' })
  await waitFor(async () => (await table(a.d.base, 'bat-hosts'))['mac-b']?.data === 'B_eth1', 'B\'s update on A')
})

test('a chain async node — malla — Lua router converges both ways', async (t) => {
  const lua = new LuaRouterDouble('W1')
  const luaUrl = await lua.start()
  t.after(() => lua.stop())
  // M: the malla daemon beside the Lua router, serving shared-state-async to X.
  const m = await asyncDaemon(t, ['--name', 'M', '--peer', luaUrl.replace(/\/$/, ''), '--sync-interval', '1', '--async-types', 'bat-hosts'])
  const xDir = await tempDir(t)
  const x = await startDaemon(t, ['--data', xDir, '--name', 'X', '--async-peer', `127.0.0.1:${m.port}`, '--async-types', 'bat-hosts:1'])
  await insert(x.base, 'bat-hosts', { 'mac-x': 'X_wlan0' })
  await waitFor(() => lua.tables.get('bat-hosts')?.['mac-x']?.data === 'X_wlan0', 'X\'s write on the Lua router', 15_000)
  // A write on the Lua router (as its own insert would leave it) reaches X through M.
  const luaTable = lua.tables.get('bat-hosts') ?? {}
  luaTable['mac-w'] = { data: 'W1_wlan0', author: 'W1', bleachTTL: 30 }
  lua.tables.set('bat-hosts', luaTable)
  await waitFor(async () => (await table(x.base, 'bat-hosts'))['mac-w']?.data === 'W1_wlan0', 'the Lua router\'s write on X', 15_000)
})

test('a C++-rules node — malla — Lua router: both ways, a later write wins everywhere, and no TTL grows on the way back', async (t) => {
  const cpp = new AsyncNodeDouble('C1', new Map([['bat-hosts', { updateInterval: 1, ttl: 2400 }]]))
  const cppPort = await cpp.start()
  t.after(() => cpp.stop())
  const lua = new LuaRouterDouble('W1')
  const luaUrl = await lua.start()
  t.after(() => lua.stop())
  const m = await asyncDaemon(t, ['--name', 'M', '--peer', luaUrl.replace(/\/$/, ''), '--sync-interval', '1', '--async-peer', `127.0.0.1:${cppPort}`, '--async-types', 'bat-hosts:1'])
  cpp.peers.push({ host: '127.0.0.1', port: m.port })

  let maxTtl = 0
  cpp.onChange = () => {
    for (const e of cpp.states.get('bat-hosts')?.values() ?? []) if (e.author === 'C1') maxTtl = Math.max(maxTtl, e.ttl)
  }
  cpp.insert('bat-hosts', { 'mac-c': 'C1_wlan0' })
  await waitFor(() => lua.tables.get('bat-hosts')?.['mac-c']?.data === 'C1_wlan0', 'the C++ node\'s write on the Lua router', 15_000)
  const luaTable = lua.tables.get('bat-hosts') ?? {}
  luaTable['mac-w'] = { data: 'W1_wlan0', author: 'W1', bleachTTL: 30 }
  await waitFor(() => cpp.states.get('bat-hosts')?.get('mac-w')?.data === 'W1_wlan0', 'the Lua router\'s write on the C++ node', 15_000)

  // A later write of the C++ node replaces the earlier one on malla and then on the Lua router.
  await new Promise((r) => setTimeout(r, 1500))
  cpp.insert('bat-hosts', { 'mac-c': 'C1_wlan1' })
  await waitFor(async () => (await table(m.d.base, 'bat-hosts'))['mac-c']?.data === 'C1_wlan1', 'the later write on malla', 15_000)
  await waitFor(() => lua.tables.get('bat-hosts')?.['mac-c']?.data === 'C1_wlan1', 'the later write on the Lua router', 15_000)
  // Rounds on the C++ node: its own entry never came back with more seconds than its insert gave it.
  for (const e of cpp.states.get('bat-hosts')?.values() ?? []) if (e.author === 'C1') maxTtl = Math.max(maxTtl, e.ttl)
  assert.ok(maxTtl <= 2400 + 1 + 1, `C1's entry reached ${maxTtl} s`)
  // The Lua router's entry, once on the C++ node, never has more seconds than its 30 rounds of 120 s.
  await new Promise((r) => setTimeout(r, 2500))
  assert.ok((cpp.states.get('bat-hosts')?.get('mac-w')?.ttl ?? 0) <= 3600)
  assert.equal((await table(m.d.base, 'bat-hosts'))['mac-c']?.data, 'C1_wlan1')
  assert.equal(cpp.states.get('bat-hosts')?.get('mac-c')?.data, 'C1_wlan1')
})

test('LibreMesh\'s own CLI on this machine (`shared-state-async insert`) writes as this node, with a clock (from another host the same is dropped: test/unit/async-wire)', async (t) => {
  const { d, port } = await asyncDaemon(t, ['--name', 'lime-1', '--async-types', 'bat-hosts'])
  const exchange = async (entries: Parameters<typeof encodeSlice>[0]) => {
    const c = await rawClient(t, port)
    c.socket.write(u32(1))
    await c.reader.read(4)
    c.socket.write(u32(1))
    const frame = encodeFrame('bat-hosts', encodeSlice(entries))
    c.socket.write(frame)
    assert.equal((await c.reader.read(4)).readUInt32BE(0), frame.length)
    const n = (await c.reader.read(1))[0] as number
    await c.reader.read(n)
    const len = (await c.reader.read(4)).readUInt32BE(0)
    await c.reader.read(len)
    c.socket.write(u32(1 + n + 4 + len))
  }
  // A publisher's insert: the node's own name, the full TTL (2400 + 30 + 1 s), over loopback.
  await exchange([['02:aa:00:00:00:01', { author: 'lime-1', ttl: 2431, data: 'lime-1_wlan0' }]])
  const mine = (await table(d.base, 'bat-hosts'))['02:aa:00:00:00:01'] as Record<string, unknown> | undefined
  assert.equal(mine?.data, 'lime-1_wlan0')
  assert.equal(mine?.author, 'lime-1')
  assert.equal(mine?.bleachTTL, 20)
  assert.match(String(mine?.clock), /^\d+$/, 'written as this node\'s own write, with a clock')
})
