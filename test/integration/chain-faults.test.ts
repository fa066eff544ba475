import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort, runCli, startDaemon, tempDir } from '../helpers/processes.js'


async function keysAt(base: string, type: string): Promise<Set<string>> {
  const r = await runCli(['get', type, '--url', base])
  return new Set(Object.keys(JSON.parse(r.stdout || '{}')))
}

test('a router killed (-9) in the middle of a chain during a burst of writes catches up after restart', async (t) => {
  const portB = await freePort()
  const dirB = await tempDir(t)
  const c = await startDaemon(t, ['--data', await tempDir(t), '--name', 'C', '--peer', `http://127.0.0.1:${portB}`, '--sync-interval', '0.5', '--timeout', '1'])
  const bArgs = ['--data', dirB, '--name', 'B', '--peer', c.base, '--sync-interval', '0.5', '--timeout', '1']
  let b = await startDaemon(t, [...bArgs])
  // startDaemon picks port 0; B must keep one port across its restart, so restart it on the port it got.
  const bPort = new URL(b.url).port
  await b.stop()
  b = await startDaemon(t, [...bArgs, '--port', bPort])
  const a = await startDaemon(t, ['--data', await tempDir(t), '--name', 'A', '--peer', b.base, '--sync-interval', '0.5', '--timeout', '1'])
  await runCli(['insert', 'burst', '--url', c.base], '{"seed":1}')
  await runCli(['insert', 'burst', '--url', a.base], '{"seed-a":1}')

  const acked: string[] = []
  let killed = false
  for (let i = 0; i < 120; i++) {
    const res = await fetch(`${a.base}/malla/v1/tables/burst/insert`, { method: 'POST', body: JSON.stringify({ [`k${i}`]: i }) })
    assert.equal(res.status, 200)
    acked.push(`k${i}`)
    if (i === 40) {
      b.child.kill('SIGKILL')
      await b.stop()
      killed = true
    }
    if (i === 80) b = await startDaemon(t, [...bArgs, '--port', bPort])
  }
  assert.ok(killed)
  // Everything written at A reaches C through the restarted B, by push and by anti-entropy.
  const deadline = Date.now() + 20_000
  let missing: string[] = acked
  while (Date.now() < deadline) {
    const atC = await keysAt(c.base, 'burst')
    missing = acked.filter((k) => !atC.has(k))
    if (missing.length === 0) break
    await sleep(200)
  }
  assert.deepEqual(missing, [], `${missing.length} writes never reached C`)
  // C's write travels the other way: B fetches it from C after its restart, and A takes it on its next exchange with B.
  let seedAtA = false
  while (!seedAtA && Date.now() < deadline + 10_000) {
    seedAtA = (await keysAt(a.base, 'burst')).has('seed')
    if (!seedAtA) await sleep(200)
  }
  assert.ok(seedAtA, 'and C\'s write reached A')
})
