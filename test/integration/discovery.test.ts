import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { ip } from '../../src/node/lab/netns.js'
import { CLI, startDaemon, tempDir } from '../helpers/processes.js'
import { cliIn, hex, linkedPair, needsRoot, watch } from './netns-helpers.js'

const HELPERS = fileURLToPath(new URL('../helpers/', import.meta.url))

/** `malla peer --discover DEV` inside a namespace, no --peer; the process is killed when the test ends. */
async function discoveringDaemon(t: { after(fn: () => unknown): void }, ns: string, name: string, dev: string) {
  const args = ['netns', 'exec', ns, process.execPath, CLI, 'peer', '--host', '::', '--port', '8080', '--name', name]
  args.push('--data', await tempDir(t), '--discover', dev, '--discover-interval', '1')
  const d = watch(spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] }))
  t.after(() => {
    d.child.kill('SIGKILL')
    return d.exited()
  })
  await d.waitFor(/ listening url=/)
  return d
}

test('two daemons joined by one veth, with --discover and no --peer, find each other by ff02::1 and share writes', async (t) => {
  if (!needsRoot(t)) return
  const id = hex()
  const [a, b, devA, devB] = [`mallatest-${id}-a`, `mallatest-${id}-b`, `mt${id}a`, `mt${id}b`]
  await linkedPair(t, a, b, devA, devB)
  const da = await discoveringDaemon(t, a, 'A', devA)
  const db = await discoveringDaemon(t, b, 'B', devB)
  assert.doesNotMatch(da.lines.join('\n'), / peers=/, 'no static peers')
  await da.waitFor(new RegExp(`neighbour added peer=http://\\[fe80::[0-9a-f:]+%25${devA}\\]:8080 source=discovered`))
  await db.waitFor(new RegExp(`neighbour added peer=http://\\[fe80::[0-9a-f:]+%25${devB}\\]:8080 source=discovered`))

  const ins = await cliIn(a, ['insert', 'demo', '--url', 'http://127.0.0.1:8080'], '{"hello":"from A"}')
  assert.equal(ins.code, 0, ins.stderr)
  await db.waitFor(/\[B\] changed type=demo/)
  const got = await cliIn(b, ['get', 'demo', '--url', 'http://127.0.0.1:8080'])
  assert.equal(JSON.parse(got.stdout).hello.data, 'from A')
  // And back, over the other direction of the link.
  await cliIn(b, ['insert', 'demo', '--url', 'http://127.0.0.1:8080'], '{"reply":"from B"}')
  await da.waitFor(/\[A\] changed type=demo/)

  const peers = await cliIn(b, ['peers', '--url', 'http://127.0.0.1:8080'])
  const list = peers.stdout.trim().split('\n').map((l) => JSON.parse(l))
  assert.equal(list.length, 1, peers.stdout)
  assert.equal(list[0].source, 'discovered')
  assert.match(list[0].base, new RegExp(`%25${devB}\\]:8080$`))
  assert.equal(list[0].malla, true)

  // The link goes away: after 3 probes without an answer, the neighbour is forgotten; the daemon lives on.
  await ip(['-n', a, 'link', 'delete', devA])
  await db.waitFor(/warn \[B\] discovery probe failed .*unknown iface/, 10_000)
  await db.waitFor(/\[B\] neighbour removed peer=http:\/\/\[fe80::/, 15_000)
  const after = await cliIn(b, ['peers', '--url', 'http://127.0.0.1:8080'])
  assert.equal(after.code, 0, after.stderr)
  assert.equal(after.stdout.trim(), '', 'no neighbour left')
})

test('--discover on a missing interface or without ping logs a clear error and keeps serving', async (t) => {
  const d = await startDaemon(t, ['--host', '::', '--data', await tempDir(t), '--discover', 'nosuch0', '--discover-interval', '1'])
  await d.waitForLog(/discovery interface not found .*iface=nosuch0/)
  await d.waitForLog(/discovery probe failed iface=nosuch0 error=".*nosuch0/)
  const info = await fetch(`${d.base}/malla/v1/info`)
  assert.equal(info.status, 200)

  // No ping on PATH (node itself is started by its full path).
  const child = spawn(process.execPath, [CLI, 'peer', '--host', '::', '--port', '0', '--data', await tempDir(t), '--discover', 'lo'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PATH: '/nonexistent' },
  })
  const w = watch(child)
  t.after(() => {
    child.kill('SIGKILL')
    return w.exited()
  })
  await w.waitFor(/error \[\S+\] discovery probe failed iface=lo error="ping not found: install iputils-ping/)
  assert.equal(child.exitCode, null, 'still running')

  // --discover without --host :: is refused up front.
  const bad = spawn(process.execPath, [CLI, 'peer', '--host', '127.0.0.1', '--discover', 'lo', '--data', await tempDir(t)], { stdio: ['ignore', 'ignore', 'pipe'] })
  const wb = watch(bad)
  assert.equal(await wb.exited(10_000), 22)
  assert.match(wb.lines.join('\n'), /--discover needs --host ::/)
})

test('a neighbour found by ff02::1 is also synced over shared-state-async, with a node that speaks nothing else', async (t) => {
  if (!needsRoot(t)) return
  const id = hex()
  const [a, b, devA, devB] = [`mallatest-${id}-a`, `mallatest-${id}-b`, `mt${id}a`, `mt${id}b`]
  await linkedPair(t, a, b, devA, devB)
  // B: a shared-state-async node on [::]:3490, and no HTTP at all.
  const nodeB = watch(spawn('ip', ['netns', 'exec', b, process.execPath, '--import', 'tsx', join(HELPERS, 'async-node-process.ts'), '::', '3490', 'B'], { stdio: ['ignore', 'pipe', 'pipe'] }))
  t.after(() => {
    nodeB.child.kill('SIGKILL')
    return nodeB.exited()
  })
  await nodeB.waitFor(/^listening 3490/, 20_000)
  const args = ['netns', 'exec', a, process.execPath, CLI, 'peer', '--host', '::', '--port', '8080', '--name', 'A', '--data', await tempDir(t)]
  args.push('--discover', devA, '--discover-interval', '1', '--async-port', '3490', '--async-types', 'bat-hosts:1')
  const da = watch(spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] }))
  t.after(() => {
    da.child.kill('SIGKILL')
    return da.exited()
  })
  await da.waitFor(/neighbour added peer=http:\/\/\[fe80::/)
  // B's entry reaches A, and A's write reaches B, both over TCP 3490 to the discovered link-local address.
  await da.waitFor(/\[A\] changed type=bat-hosts/, 15_000)
  const got = await cliIn(a, ['get', 'bat-hosts', '--url', 'http://127.0.0.1:8080'])
  assert.equal(JSON.parse(got.stdout).B.data, 'B_wlan0')
  assert.equal((await cliIn(a, ['insert', 'bat-hosts', '--url', 'http://127.0.0.1:8080'], '{"A":"A_wlan0"}')).code, 0)
  await nodeB.waitFor(/^changed bat-hosts A$/, 15_000)
})
