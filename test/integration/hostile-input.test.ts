import assert from 'node:assert/strict'
import { readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { createServer, connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { WebSocket } from 'ws'
import { MAX_CLOCK, MAX_CLOCK_LEAD_MS } from '../../src/core/clock.js'
import { SIGNATURE_CHECK_BYTES, SOURCE_LIMITS } from '../../src/node/daemon/source-limits.js'
import { createIdentity } from '../../src/identity/identity.js'
import { PRESENCE_TABLE } from '../../src/overlay/presence.js'
import { roomOwnType } from '../../src/overlay/room-tables.js'
import { recordSigner } from '../../src/signaling/signed-records.js'
import { followChanges, type FeedEvent } from '../../src/transport/change-feed-client.js'
import { freePort, post, runCli, startDaemon, tempDir, type RunningDaemon } from '../helpers/processes.js'
import { waitFor } from '../helpers/wait.js'
import { cliIn, hostLink } from './netns-helpers.js'

const insert = (base: string, type: string, values: unknown) => post(`${base}/malla/v1/tables/${type}/insert`, JSON.stringify(values))
const table = async (base: string, type: string): Promise<Record<string, { data: unknown; author: string; clock?: string }>> =>
  JSON.parse((await runCli(['get', type, '--url', base])).stdout || '{}')

/** An HTTP request sent from a chosen local address, so a daemon sees it come from there. */
function requestFrom(localAddress: string, url: string, method: string, body = '', headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, localAddress, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers }, timeout: 10_000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
    })
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)))
    req.on('error', reject)
    req.end(body)
  })
}

/** The daemon's resident memory in MiB, read from /proc, as an operator would see it. */
async function rssMiB(d: RunningDaemon): Promise<number> {
  const status = await readFile(`/proc/${d.child.pid}/status`, 'utf8')
  return Number((/VmRSS:\s+(\d+) kB/.exec(status) as RegExpExecArray)[1]) / 1024
}

test('an entry with a clock just under 2^53 cannot stop a node writing, syncing or restarting', async (t) => {
  const [dirA, dirB] = [await tempDir(t), await tempDir(t)]
  const [portA, portB] = [await freePort(), await freePort()]
  const args = (name: string, dir: string, port: number, peer: number) => ['--data', dir, '--name', name, '--port', String(port), '--peer', `http://127.0.0.1:${peer}`]
  let a = await startDaemon(t, args('A', dirA, portA, portB))
  let b = await startDaemon(t, args('B', dirB, portB, portA))
  // Valid on the wire, and accepted and relayed as any entry is: it just claims to come from the far future.
  const poison = { data: 'x', author: 'evil', bleachTTL: 30, clock: '9007199254740990' }
  assert.equal((await post(`${a.base}/cgi-bin/shared-state/hosts`, JSON.stringify({ poison }))).status, 200)
  await waitFor(async () => (await table(b.base, 'hosts')).poison !== undefined, 'B holds the poisoned entry')

  // Both nodes still write entries their neighbour takes.
  assert.equal((await insert(a.base, 'hosts', { a1: 1 })).status, 200)
  assert.equal((await insert(b.base, 'hosts', { b1: 2 })).status, 200)
  await waitFor(async () => (await table(b.base, 'hosts')).a1 !== undefined, "A's write reaches B")
  await waitFor(async () => (await table(a.base, 'hosts')).b1 !== undefined, "B's write reaches A")
  const atA = await table(a.base, 'hosts')
  for (const key of ['a1', 'b1']) {
    const clock = Number(atA[key]?.clock)
    assert.ok(clock < MAX_CLOCK && clock <= Date.now() + MAX_CLOCK_LEAD_MS + 1000, `${key}'s clock ${clock} stays valid and within the lead bound`)
  }

  // A restart loses nothing and sets nothing aside, and the nodes still sync.
  await a.stop()
  await b.stop()
  a = await startDaemon(t, args('A', dirA, portA, portB))
  b = await startDaemon(t, args('B', dirB, portB, portA))
  for (const d of [a, b]) {
    assert.deepEqual(Object.keys(await table(d.base, 'hosts')).sort(), ['a1', 'b1', 'poison'])
    assert.deepEqual(d.log.filter((l) => /unreadable|corrupt/.test(l)), [])
  }
  assert.equal((await insert(a.base, 'hosts', { a2: 3 })).status, 200)
  await waitFor(async () => (await table(b.base, 'hosts')).a2 !== undefined, "A's write after the restart reaches B")
})

test('a deeply nested value is refused at the edge and fails nobody else: writes, reads and the feed go on', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--name', 'N'])
  await insert(d.base, 'chat', { first: 0 })
  // Where a client that will resume later stands now.
  const start = await new Promise<string>((resolve, reject) => {
    const stop = new AbortController()
    followChanges(d.base, (e) => (stop.abort(), resolve(e.cursor)), { signal: stop.signal }).catch(reject)
  })
  const deep = `${'['.repeat(6000)}${']'.repeat(6000)}`
  const honest = Array.from({ length: 200 }, (_, i) => insert(d.base, 'chat', { [`k${i}`]: i }))
  const reads = Array.from({ length: 200 }, () => fetch(`${d.base}/malla/v1/tables/chat`).then((r) => r.status))
  const hostile = [
    post(`${d.base}/malla/v1/tables/chat/insert`, `{"deep":${deep}}`),
    post(`${d.base}/cgi-bin/shared-state/chat`, `{"deep":{"data":${deep},"author":"x","bleachTTL":30}}`),
    post(`${d.base}/cgi-bin/shared-state/chat`, `{"deep":{"data":${deep},"author":"x","bleachTTL":30}}`, { 'x-malla-sync': 'push' }),
  ]
  const refused = await Promise.all(hostile)
  for (const r of refused) {
    assert.equal(r.status, 400, r.text)
    assert.match(JSON.parse(r.text).error.message, /nested deeper than/)
  }
  assert.deepEqual((await Promise.all(honest)).map((r) => r.status), Array(200).fill(200))
  assert.deepEqual(await Promise.all(reads), Array(200).fill(200))
  assert.equal((await insert(d.base, 'chat', { after: 'x' })).status, 200)

  // A client resuming from before gets every honest change, the one after it too, and nothing of the nested value.
  const seen = new Set<string>()
  const events: FeedEvent[] = []
  const stop = new AbortController()
  t.after(() => stop.abort())
  const following = followChanges(d.base, (e) => {
    events.push(e)
    if (e.event === 'change') for (const k of e.keys) seen.add(k)
    if (seen.has('after')) stop.abort()
  }, { since: start, signal: stop.signal })
  await Promise.race([following, new Promise((_, reject) => setTimeout(() => reject(new Error(`feed stalled; saw ${[...seen].join(',')}`)), 10_000))])
  assert.deepEqual(events.filter((e) => e.event !== 'change'), [])
  for (let i = 0; i < 200; i++) assert.ok(seen.has(`k${i}`), `k${i} delivered`)
  assert.ok(!seen.has('deep'))
  assert.equal((await table(d.base, 'chat')).deep, undefined)
})

test('numbers that JSON cannot carry (1e309) are refused, not stored as null', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--name', 'N'])
  const a = await post(`${d.base}/malla/v1/tables/nums/insert`, '{"k":1e309}')
  assert.equal(a.status, 400)
  assert.match(a.text, /finite/)
  const b = await post(`${d.base}/cgi-bin/shared-state/nums`, '{"k":{"data":{"n":-1e999},"author":"x","bleachTTL":30}}')
  assert.equal(b.status, 400)
  assert.deepEqual(await table(d.base, 'nums'), {})
})

test('memory stays bounded under big writes, stalled feed clients and push sockets that never read', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--name', 'M'])
  await insert(d.base, 'big', { warm: 1 })
  const before = await rssMiB(d)
  const port = new URL(d.base).port
  // 200 feed clients that never read, and 20 push sockets that send and never read the answers.
  const stalled: Socket[] = []
  t.after(() => stalled.forEach((s) => s.destroy()))
  for (let i = 0; i < 200; i++) {
    const s = connect({ host: '127.0.0.1', port: Number(port) })
    s.on('error', () => {})
    s.write(`GET /malla/v1/events HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n\r\n`)
    s.pause()
    stalled.push(s)
  }
  const sockets = await Promise.all(
    Array.from({ length: 20 }, () => new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/malla/v1/push`)
      ws.once('open', () => resolve(ws))
      ws.once('error', reject)
    })),
  )
  t.after(() => sockets.forEach((ws) => ws.terminate()))
  for (const ws of sockets) ws.pause()
  let peak = before
  const sampler = setInterval(() => void rssMiB(d).then((m) => (peak = Math.max(peak, m)), () => {}), 100)
  t.after(() => clearInterval(sampler))
  // 800 writes of about 1 MiB, each rewriting the same 16 keys: the table stays 1 MiB, the changes add up to 800 MiB.
  // Each write changes the data (a write of the same data is no change, and nothing would be logged).
  const values = (write: number) => Object.fromEntries(Array.from({ length: 16 }, (_, k) => [`key-${k}`, `${write}`.padEnd(60_000, 'v')]))
  const statuses: number[] = []
  for (let round = 0; round < 200; round++) {
    const frame = JSON.stringify({ id: round, type: 'big', entries: { [`s${round % 4}`]: { data: 'w'.repeat(30_000), author: 'p', bleachTTL: 30, clock: String(1e12 + round) } } })
    for (const ws of sockets) ws.send(frame)
    statuses.push(...(await Promise.all(Array.from({ length: 4 }, (_, i) => insert(d.base, 'big', values(round * 4 + i)).then((r) => r.status)))))
  }
  assert.deepEqual(new Set(statuses), new Set([200]))
  await new Promise((r) => setTimeout(r, 2000))
  const after = await rssMiB(d)
  clearInterval(sampler)
  // Before this bound existed the daemon reached 895 MiB on the writes alone, and kept 850 MiB.
  t.diagnostic(`daemon RSS: ${before.toFixed(0)} MiB before, ${peak.toFixed(0)} MiB at peak, ${after.toFixed(0)} MiB after`)
  assert.ok(peak < before + 200, `peak RSS ${peak.toFixed(0)} MiB, from ${before.toFixed(0)} MiB`)
  assert.ok(after < before + 150, `RSS after ${after.toFixed(0)} MiB, from ${before.toFixed(0)} MiB`)
  // The daemon still answers at once.
  assert.equal((await insert(d.base, 'small', { k: 1 })).status, 200)
})

test('feed clients that read keep up with large changes, while clients that do not read are the only ones dropped', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--name', 'F'])
  const port = Number(new URL(d.base).port)
  const idle: Socket[] = []
  t.after(() => idle.forEach((s) => s.destroy()))
  for (let i = 0; i < 40; i++) {
    const s = connect({ host: '127.0.0.1', port })
    s.on('error', () => {})
    s.write(`GET /malla/v1/events HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n\r\n`)
    s.pause()
    idle.push(s)
  }
  const stop = new AbortController()
  t.after(() => stop.abort())
  const readers = Array.from({ length: 60 }, () => ({ changes: 0, resets: 0 }))
  const ready: Array<Promise<void>> = readers.map((r) => new Promise<void>((resolve) => {
    void followChanges(d.base, (e) => {
      if (e.event === 'hello') resolve()
      if (e.event === 'reset') r.resets++
      if (e.event === 'change' && e.type === 'big') r.changes++
    }, { signal: stop.signal })
  }))
  await Promise.all(ready)
  // Five changes of about 1 MB each: every idle client's socket fills at once; the readers' empty again.
  for (let i = 0; i < 5; i++) {
    const values = Object.fromEntries(Array.from({ length: 16 }, (_, k) => [`key-${k}`, `${i}`.padEnd(60_000, 'v')]))
    assert.equal((await insert(d.base, 'big', values)).status, 200)
  }
  await waitFor(() => readers.every((r) => r.changes === 5), `every reader gets the 5 changes (${readers.map((r) => r.changes).join(',')})`, 30_000)
  assert.deepEqual(readers.filter((r) => r.resets > 0), [], 'no reader was dropped and reset')
  assert.deepEqual(d.log.filter((l) => /feed client dropped/.test(l)), [])
})

test('a push socket that sends without reading its answers is dropped once they pass the bound', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--name', 'P'])
  assert.equal((await insert(d.base, 'hosts', { big: 'b'.repeat(60_000) })).status, 200)
  const ws = new WebSocket(`ws://127.0.0.1:${new URL(d.base).port}/malla/v1/push`)
  t.after(() => ws.terminate())
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)))
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()))
  ws.on('error', () => {})
  ws.pause()
  // Each frame sends an old copy of "big": each answer corrects it with the stored 60 KB entry.
  for (let id = 0; id < 400 && ws.readyState === WebSocket.OPEN; id++) {
    ws.send(JSON.stringify({ id, type: 'hosts', entries: { big: { data: 'old', author: 'x', bleachTTL: 30, clock: '1' } } }))
    if (id % 50 === 49) await new Promise((r) => setTimeout(r, 100))
  }
  await d.waitForLog(/push socket dropped .*answers unread/)
  ws.resume()
  await closed
  // The daemon goes on serving others.
  assert.equal((await insert(d.base, 'hosts', { after: 1 })).status, 200)
})

test('a 10,000-entry table reaches a neighbour that joins late, with the default limits', async (t) => {
  const portB = await freePort()
  // Only the repair period is shortened, so the test does not wait a minute; every limit is the default.
  const a = await startDaemon(t, ['--data', await tempDir(t), '--name', 'A', '--peer', `http://127.0.0.1:${portB}`, '--sync-interval', '1'])
  for (let batch = 0; batch < 5; batch++) {
    const values = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`host-${batch * 2000 + i}`, { ip: `10.${batch}.${i >> 8}.${i & 255}`, pad: 'x'.repeat(150) }]))
    assert.equal((await insert(a.base, 'hosts', values)).status, 200)
  }
  const b = await startDaemon(t, ['--data', await tempDir(t), '--name', 'B', '--port', String(portB)])
  await waitFor(async () => Object.keys(await table(b.base, 'hosts')).length === 10_000, 'B holds all 10,000 entries', 60_000, 250)
  assert.deepEqual(b.log.filter((l) => /status=413|\b413\b|too large/i.test(l)), [])
  // A LibreMesh router has only the whole-table sync: over the limit it is refused, and the log says what to set.
  // B answers 413 and closes as soon as the body passes the limit: the client may still be sending then, and
  // see the connection reset instead of the answer. Either way the whole table was refused.
  const whole = await post(`${b.base}/cgi-bin/shared-state/hosts`, (await runCli(['get', 'hosts', '--url', a.base])).stdout).catch((e: Error) => ({ status: e.message }))
  assert.ok(whole.status === 413 || whole.status === 'fetch failed', `refused: ${whole.status}`)
  await b.waitForLog(/status=413 .*raise --max-body/)
})

test('a journal record that does not parse loses only itself: the rest is kept and the bad line set aside', async (t) => {
  const dir = await tempDir(t)
  const entry = (data: number) => ({ data, author: 'J', bleachTTL: 9, clock: String(1e12 + data) })
  await writeFile(join(dir, 'hosts.json'), JSON.stringify({ base: entry(0) }))
  const st = await stat(join(dir, 'hosts.json'), { bigint: true })
  const records = [
    JSON.stringify({ base: `${st.ino}:${st.size}` }),
    JSON.stringify({ set: { one: entry(1) }, del: [] }),
    '{"set":{"two":{"data":2,"author":"J","bleachT',
    JSON.stringify({ set: { three: entry(3) }, del: [] }),
  ]
  await writeFile(join(dir, 'hosts.json.journal'), records.join('\n') + '\n')
  const d = await startDaemon(t, ['--data', dir, '--name', 'J'])
  await d.waitForLog(/unreadable parts of a table set aside.* table=ttl\/hosts kept=3 unreadable=1/)
  assert.deepEqual(Object.keys(await table(d.base, 'hosts')).sort(), ['base', 'one', 'three'])
  const aside = (await readdir(dir)).find((f) => f.startsWith('hosts.json.unreadable-'))
  assert.ok(aside)
  assert.equal(await readFile(join(dir, aside), 'utf8'), `${records[2]}\n`)
})

test("the operator's verbs are refused from another host: no relay, no remote bleach; the mesh's own endpoints stay open", async (t) => {
  const link = await hostLink(t)
  const [from] = link.outside as [string, string]
  const d = await startDaemon(t, ['--data', await tempDir(t), '--name', 'R', '--port', '8080'], { netns: link.ns, host: '0.0.0.0' })
  const base = `http://${link.inside}:8080`
  // Where an open relay would send the table: a listener of our own, which must hear nothing.
  let contacted = 0
  const target = createServer((s) => (contacted++, s.destroy()))
  await new Promise<void>((resolve) => target.listen(0, from, resolve))
  t.after(() => target.close())
  const targetUrl = `http://${from}:${(target.address() as { port: number }).port}/cgi-bin/shared-state/hosts`

  assert.equal((await cliIn(link.ns, ['insert', 'hosts', '--url', 'http://127.0.0.1:8080'], '{"k":"v"}')).code, 0, 'this machine may')
  for (const [path, body] of [
    ['/malla/v1/tables/hosts/sync', JSON.stringify(Array(50).fill(targetUrl))],
    ['/malla/v1/tables/hosts/sync', '[]'],
    ['/malla/v1/tables/hosts/insert', '{"k":"hijacked"}'],
    ['/malla/v1/tables/hosts/remove', '["k"]'],
    ['/malla/v1/tables/hosts/bleach', ''],
    ['/malla/v1/multiwriter/hosts/insert', '{"k":1}'],
    ['/malla/v1/multiwriter/hosts/sync', '[]'],
  ] as const) {
    const r = await requestFrom(from, `${base}${path}`, 'POST', body)
    assert.equal(r.status, 403, `${path}: ${r.text}`)
    assert.equal(JSON.parse(r.text).error.code, 'FORBIDDEN')
    assert.match(JSON.parse(r.text).error.message, new RegExp(`--api-allow ${from.replace(/\./g, '\\.')}/32 `))
  }
  assert.equal(contacted, 0, 'the daemon contacted nobody for a stranger')
  const kept = (await cliIn(link.ns, ['get', 'hosts', '--url', 'http://127.0.0.1:8080'])).stdout
  assert.equal(JSON.parse(kept).k.data, 'v')
  assert.equal(JSON.parse(kept).k.bleachTTL, 30, 'not bleached')

  // Reads, LibreMesh's endpoint and reconciliation are the mesh's: open to everyone.
  assert.equal((await requestFrom(from, `${base}/malla/v1/tables/hosts`, 'GET')).status, 200)
  assert.equal((await requestFrom(from, `${base}/cgi-bin/shared-state/hosts`, 'POST', '{"w":{"data":1,"author":"W","bleachTTL":30}}')).status, 200)
  const summary = { v: 1, flavour: 'ttl', type: 'hosts', buckets: 16, digests: '0'.repeat(256) }
  assert.equal((await requestFrom(from, `${base}/malla/v1/reconcile`, 'POST', JSON.stringify(summary))).status, 200)
  await d.stop()

  // --api-allow lets a network in.
  const allowed = await startDaemon(t, ['--data', await tempDir(t), '--name', 'R', '--port', '8080', '--api-allow', `${from}/32`], { netns: link.ns, host: '0.0.0.0' })
  t.after(() => allowed.stop())
  assert.equal((await requestFrom(from, `${base}/malla/v1/tables/hosts/insert`, 'POST', '{"k":"ok"}')).status, 200)
  assert.equal((await requestFrom(link.outside[1] as string, `${base}/malla/v1/tables/hosts/insert`, 'POST', '{"k":"no"}')).status, 403)
})

test('a flood of large writes from one address is slowed to its budget; another address is served as usual', async (t) => {
  const link = await hostLink(t)
  const [attacker, honest] = link.outside as [string, string]
  const d = await startDaemon(t, ['--data', await tempDir(t), '--name', 'R', '--port', '8080'], { netns: link.ns, host: '0.0.0.0' })
  const url = `http://${link.inside}:8080/cgi-bin/shared-state/flood`
  const big = JSON.stringify(Object.fromEntries(Array.from({ length: 16 }, (_, k) => [`k${k}`, { data: 'f'.repeat(60_000), author: 'a', bleachTTL: 30 }])))
  let accepted = 0
  let refused = 0
  const started = Date.now()
  const until = started + 5000
  const flood = Array.from({ length: 8 }, async () => {
    while (Date.now() < until) {
      // Refused before its body is read, a request's connection is closed under it: the sender sees a reset.
      const r = await requestFrom(attacker, url, 'POST', big).catch((e: NodeJS.ErrnoException) => ({ status: e.code ?? e.message, text: '' }))
      if (r.status === 200) accepted += Buffer.byteLength(big)
      else if (r.status === 429 || r.status === 'ECONNRESET' || r.status === 'EPIPE') refused++
      else assert.fail(`flood answered ${r.status}: ${r.text}; daemon log:\n${d.log.join('\n')}`)
    }
  })
  const statuses: number[] = []
  for (let i = 0; Date.now() < until; i++) {
    // A push, as a page sends its writes: answered with corrections only, not with the table the flood filled.
    const body = JSON.stringify({ [`h${i}`]: { data: i, author: 'h', bleachTTL: 30, clock: String(1e12 + i) } })
    statuses.push((await requestFrom(honest, url, 'POST', body, { 'x-malla-sync': 'push' }).catch((e: Error) => ({ status: `honest: ${e.message}` }))).status as number)
    await new Promise((r) => setTimeout(r, 50))
  }
  await Promise.all(flood)
  const seconds = (Date.now() - started) / 1000
  t.diagnostic(`flood: ${(accepted / 2 ** 20).toFixed(1)} MiB accepted in ${seconds.toFixed(1)} s, ${refused} refused; honest: ${statuses.length} requests`)
  assert.ok(refused > 0, 'the flood was refused once over its budget')
  const budget = SOURCE_LIMITS.burstBytes + SOURCE_LIMITS.bytesPerSecond * seconds + 8 * Buffer.byteLength(big)
  assert.ok(accepted <= budget, `${accepted} bytes accepted, at most ${budget}`)
  assert.ok(statuses.length > 20)
  assert.deepEqual(new Set(statuses), new Set([200]), 'every honest request served')

  // Its budget spent, the attacker cannot go on through a push socket either: the socket is closed unread.
  const ws = new WebSocket(`ws://${link.inside}:8080/malla/v1/push`, { localAddress: attacker })
  t.after(() => ws.terminate())
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)))
  const code = new Promise<number>((resolve) => ws.once('close', (c) => resolve(c)))
  ws.send(JSON.stringify({ id: 1, type: 'flood', entries: JSON.parse(big) }))
  assert.equal(await code, 1013)
})

test('signatures to check cost their sender: one address gets only as many records verified as its budget pays for; another address is served as usual', async (t) => {
  const link = await hostLink(t)
  const [attacker, honest] = link.outside as [string, string]
  await startDaemon(t, ['--data', await tempDir(t), '--name', 'R', '--port', '8080'], { netns: link.ns, host: '0.0.0.0' })
  const type = roomOwnType('plaza', PRESENCE_TABLE)
  const url = `http://${link.inside}:8080/cgi-bin/shared-state/${type}`
  const mallory = await createIdentity('Mallory')
  // Valid presence under a new id of Mallory's key each: every one would be kept, if the router verified it.
  const batch = (n: number) => {
    const entries: Record<string, unknown> = {}
    for (let i = 0; i < n; i++) {
      const m = recordSigner(mallory)
      entries[m.peerId] = { data: m.sign(type, m.peerId, { v: 1, n: `Mallory ${i}` }), author: m.peerId, bleachTTL: 8 }
    }
    return JSON.stringify(entries)
  }
  const perRequest = 500
  const bodies = Array.from({ length: 6 }, () => batch(perRequest))
  const started = Date.now()
  for (const body of bodies) {
    const r = await requestFrom(attacker, url, 'POST', body).catch((e: Error) => ({ status: e.message, text: '' }))
    assert.ok(r.status === 200 || r.status === 429, `flood answered ${r.status}`)
  }
  const seconds = (Date.now() - started) / 1000
  const kept = async () => JSON.parse((await cliIn(link.ns, ['get', type, '--url', 'http://127.0.0.1:8080'])).stdout || '{}') as Record<string, { data: unknown }>
  const verified = Object.keys(await kept()).length
  // The budget pays for the bytes and the checks: 4 MiB at once, then 256 KiB a second, 4 KiB a check.
  const affordable = (SOURCE_LIMITS.burstBytes + SOURCE_LIMITS.bytesPerSecond * seconds) / SIGNATURE_CHECK_BYTES
  t.diagnostic(`${bodies.length * perRequest} signed records sent in ${seconds.toFixed(1)} s; ${verified} verified and kept, ${affordable.toFixed(0)} affordable`)
  assert.ok(verified > 0)
  assert.ok(verified <= affordable + bodies.length, `${verified} verified, the budget pays for ${affordable.toFixed(0)}`)
  assert.ok(verified < bodies.length * perRequest, 'the rest was dropped unread')
  // Another address is served and checked as usual.
  const ana = recordSigner(await createIdentity('Ana'))
  const own = ana.sign(type, ana.peerId, { v: 1, n: 'Ana' })
  assert.equal((await requestFrom(honest, url, 'POST', JSON.stringify({ [ana.peerId]: { data: own, author: ana.peerId, bleachTTL: 8 } }))).status, 200)
  assert.deepEqual((await kept())[ana.peerId]?.data, own)
})
