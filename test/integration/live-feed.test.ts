import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { test } from 'node:test'
import { CLI, runCli, startDaemon, tempDir } from '../helpers/processes.js'

/** Runs `malla watch` and hands out its JSON lines one by one, each within a time bound. */
function watch(t: { after(fn: () => unknown): void }, args: string[]) {
  const child = spawn(process.execPath, [CLI, 'watch', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => child.kill('SIGKILL'))
  const lines: unknown[] = []
  const waiters: Array<() => void> = []
  createInterface({ input: child.stdout }).on('line', (l) => {
    lines.push(JSON.parse(l))
    waiters.splice(0).forEach((w) => w())
  })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  let read = 0
  const next = async (timeoutMs = 10_000): Promise<Record<string, any>> => {
    const deadline = Date.now() + timeoutMs
    while (read >= lines.length) {
      if (Date.now() > deadline) throw new Error(`no line from malla watch within ${timeoutMs} ms; stderr: ${stderr}`)
      await new Promise<void>((resolve) => {
        waiters.push(resolve)
        setTimeout(resolve, 100)
      })
    }
    return lines[read++] as Record<string, any>
  }
  const stop = () => new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : (child.once('exit', () => resolve()), child.kill('SIGINT'))))
  return { next, stop }
}

test('malla watch prints changes live and resumes after a cursor without missing or repeating any', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--name', 'W'])
  const first = watch(t, ['demo', '--url', d.base])
  assert.equal((await first.next()).event, 'hello')
  await runCli(['insert', 'demo', '--url', d.base], '{"a":1}')
  await runCli(['insert', 'other', '--url', d.base], '{"ignored":1}')
  const a = await first.next()
  assert.equal(a.event, 'change')
  assert.deepEqual(a.keys, ['a'])
  assert.equal(a.entries.a.data, 1)
  await first.stop()

  // Missed while away: b and the removal of a; then c arrives live.
  await runCli(['insert', 'demo', '--url', d.base], '{"b":2}')
  await runCli(['remove', 'demo', '--url', d.base], '["a"]')
  const again = watch(t, ['demo', '--url', d.base, '--since', a.cursor])
  const b = await again.next()
  assert.deepEqual([b.event, b.keys, b.entries.b.data], ['change', ['b'], 2])
  const removal = await again.next()
  assert.deepEqual([removal.keys, removal.entries.a.data], [['a'], null])
  await runCli(['insert', 'demo', '--url', d.base], '{"c":3}')
  const c = await again.next()
  assert.deepEqual(c.keys, ['c'])
  const seq = (x: Record<string, any>) => Number(String(x.cursor).split('.')[1])
  assert.ok(seq(a) < seq(b) && seq(b) < seq(removal) && seq(removal) < seq(c), 'cursors grow')
})

test('a cursor from another run of the daemon, or garbage, gets a reset instead of a silent gap', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t)])
  for (const since of ['otherrun.5', 'nonsense']) {
    const w = watch(t, ['--url', d.base, '--since', since])
    const reset = await w.next()
    assert.equal(reset.event, 'reset')
    assert.match(reset.cursor, /^\w+\.0$/)
    await w.stop()
  }
  const bad = await runCli(['watch', 'bad.type', '--url', d.base])
  assert.equal(bad.code, 22)
})
