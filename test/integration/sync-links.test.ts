import assert from 'node:assert/strict'
import { createServer, type Socket } from 'node:net'
import { test } from 'node:test'
import { freePort, runCli, startDaemon, tempDir } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'

const table = async (base: string, type = 'hosts'): Promise<Record<string, { data: unknown }>> => JSON.parse((await runCli(['get', type, '--url', base])).stdout) as Record<string, { data: unknown }>

/** A neighbour that accepts connections and never answers: the worst a dead router does to its neighbours. */
async function silentNeighbour(t: { after(fn: () => unknown): void }): Promise<string> {
  const sockets = new Set<Socket>()
  const server = createServer((s) => {
    sockets.add(s)
    s.on('error', () => {})
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`
}

test('a neighbour that never answers delays no other neighbour: each link has its own queue', async (t) => {
  const silent = await silentNeighbour(t)
  const b = await startDaemon(t, ['--data', await tempDir(t), '--name', 'B'])
  // A long request timeout: with one shared round per change, every change after the first would wait for it.
  const a = await startDaemon(t, ['--data', await tempDir(t), '--name', 'A', '--verbose', '--timeout', '20', '--peer', silent, '--peer', b.base])
  assert.equal((await runCli(['insert', 'hosts', '--url', a.base], '{"first":0}')).code, 0)
  await waitFor(async () => (await table(b.base)).first !== undefined, 'B has the first change')
  for (let i = 1; i <= 5; i++) {
    const started = Date.now()
    assert.equal((await runCli(['insert', 'hosts', '--url', a.base], JSON.stringify({ [`k${i}`]: i }))).code, 0)
    await waitFor(async () => (await table(b.base))[`k${i}`] !== undefined, `B has change ${i}`, 15_000, 20)
    // Far below the 20 s the silent neighbour holds each request: nothing B gets waits for it.
    assert.ok(Date.now() - started < 10_000, `change ${i} reached B in ${Date.now() - started} ms`)
  }
  assert.deepEqual(a.log.filter((l) => /failed .*url=http:\/\/127\.0\.0\.1:\d+ /.test(l) && l.includes(b.base)), [], 'no exchange with B failed')
})

test('a change is never sent back to the neighbour it came from', async (t) => {
  const portA = await freePort()
  const c = await startDaemon(t, ['--data', await tempDir(t), '--name', 'C', '--verbose'])
  // A and B are each other's neighbours: B could send A's changes back to it.
  const b = await startDaemon(t, ['--data', await tempDir(t), '--name', 'B', '--verbose', '--peer', c.base, '--peer', `http://127.0.0.1:${portA}`])
  const a = await startDaemon(t, ['--data', await tempDir(t), '--name', 'A', '--verbose', '--port', String(portA), '--peer', b.base])
  assert.equal((await runCli(['insert', 'hosts', '--url', a.base], '{"warm":0}')).code, 0)
  await waitFor(async () => (await table(c.base)).warm !== undefined, 'C has the warm-up change')
  await waitFor(() => b.log.filter((l) => /neighbour speaks malla peer=/.test(l)).length === 2, 'B knows both its neighbours speak malla')
  const servedAtA = () => a.log.filter((l) => /served push/.test(l)).length
  const pushedByB = (to: string) => b.log.filter((l) => / pushed type=hosts /.test(l) && l.includes(`url=${to} `)).length
  const before = { servedAtA: servedAtA(), toC: pushedByB(c.base), toA: pushedByB(a.base) }
  for (let i = 0; i < 5; i++) assert.equal((await runCli(['insert', 'hosts', '--url', a.base], JSON.stringify({ [`k${i}`]: i }))).code, 0)
  await waitFor(async () => Object.keys(await table(c.base)).length === 6, 'C has all 5 changes')
  await waitFor(() => pushedByB(c.base) > before.toC, 'B pushed them on to C')
  // B's pushes to C and to A would leave together: give any push to A time to land.
  await new Promise((r) => setTimeout(r, 500))
  assert.equal(pushedByB(a.base) - before.toA, 0, 'B pushed none of them back to A')
  assert.equal(servedAtA() - before.servedAtA, 0, 'A served no push of its own changes')
})
