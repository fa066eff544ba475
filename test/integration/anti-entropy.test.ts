import assert from 'node:assert/strict'
import { test } from 'node:test'
import { post, runCli, startDaemon, tempDir } from '../helpers/processes.js'

test('anti-entropy between malla daemons sends only what differs, not the whole table', async (t) => {
  // B has no peers, so its own writes reach A only through A's periodic reconciliation.
  const b = await startDaemon(t, ['--data', await tempDir(t), '--name', 'B', '--max-body', String(4 * 1024 * 1024)])
  const a = await startDaemon(t, ['--data', await tempDir(t), '--name', 'A', '--verbose', '--peer', b.base, '--sync-interval', '0.5'])
  const big = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`host-${i}`, { ip: `10.0.${i >> 8}.${i & 255}`, pad: 'x'.repeat(150) }]))
  await runCli(['insert', 'hosts', '--url', a.base], JSON.stringify(big))
  await a.waitForLog(/neighbour speaks malla/)
  await a.waitForLog(/reconciled type=hosts url=\S+ changed=0 sent=\d+ received=\d+/)

  await runCli(['insert', 'hosts', '--url', b.base], '{"written-on-b":"hello"}')
  const line = await a.waitForLog(/reconciled type=hosts url=\S+ changed=1 /)
  const [sent = 0, received = 0] = [/sent=(\d+)/, /received=(\d+)/].map((r) => Number((r.exec(line) as RegExpExecArray)[1]))
  const fullTable = (await runCli(['get', 'hosts', '--url', a.base])).stdout.length
  assert.ok(sent + received < fullTable / 20, `${sent}+${received} bytes to repair one entry of a ${fullTable}-byte table`)
  assert.equal(JSON.parse((await runCli(['get', 'hosts', '--url', a.base])).stdout)['written-on-b'].data, 'hello')
})

test('a neighbour that keeps sending garbage summaries is refused more work (429 BUSY)', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t)])
  const statuses: number[] = []
  for (let i = 0; i < 25; i++) {
    const r = await post(`${d.base}/malla/v1/reconcile`, JSON.stringify({ v: 1, flavour: 'ttl', type: 'x', buckets: 16, digests: 'nothex' }))
    statuses.push(r.status)
    if (r.status === 429) {
      assert.equal(JSON.parse(r.text).error.code, 'BUSY')
      break
    }
  }
  assert.equal(statuses[0], 400)
  assert.equal(statuses.at(-1), 429, `statuses: ${statuses}`)
  // Its budget is charged up front, so even a valid request is refused now.
  const valid = await post(`${d.base}/malla/v1/reconcile`, JSON.stringify({ v: 1, flavour: 'ttl', type: 'x', buckets: 16, digests: '0'.repeat(256) }))
  assert.equal(valid.status, 429)
})
