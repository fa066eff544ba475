import assert from 'node:assert/strict'
import { request } from 'node:http'
import { test } from 'node:test'
import { gunzipSync, gzipSync } from 'node:zlib'
import { post, startDaemon, tempDir } from '../helpers/processes.js'

/** The recorded table of a real Lua router after insert and remove (lua-wire-examples.md). */
const LUA_TABLE =
  '{"hello":{"bleachTTL":30,"data":"world","author":"W1"},"path":{"bleachTTL":30,"data":"a\\/b","author":"W1"},"obj":{"bleachTTL":30,"data":[],"author":"W1"},"list":{"author":"W1","bleachTTL":30}}'

async function table(base: string, type: string): Promise<Record<string, Record<string, unknown>>> {
  const r = await post(`${base}/cgi-bin/shared-state/${type}`, '')
  assert.equal(r.status, 200)
  return JSON.parse(r.text)
}

test('the endpoint merges a router\'s table and answers the merged table, as LibreMesh does', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--name', 'M1'])
  const r = await post(`${d.base}/cgi-bin/shared-state/demo`, LUA_TABLE, { 'content-type': 'application/x-www-form-urlencoded' })
  assert.equal(r.status, 200)
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/)
  assert.ok(r.text.endsWith('\n'))
  const merged = JSON.parse(r.text)
  assert.deepEqual(merged.path, { bleachTTL: 30, data: 'a/b', author: 'W1' })
  assert.deepEqual(merged.obj.data, [])
  assert.equal(merged.list.data, null, 'a removed entry without a data field is a removal')
  assert.equal(merged.list.author, 'W1')

  // Higher TTL replaces (extra fields kept whole), lower is ignored, TTL 0 is dropped.
  const second = await post(
    `${d.base}/cgi-bin/shared-state/demo`,
    '{"hello":{"bleachTTL":31,"data":"newer","author":"W2","v":7},"path":{"bleachTTL":3,"data":"older","author":"W2"},"dead":{"bleachTTL":0,"data":1,"author":"W2"}}',
  )
  const after = JSON.parse(second.text)
  assert.deepEqual(after.hello, { bleachTTL: 31, data: 'newer', author: 'W2', v: 7 })
  assert.equal(after.path.data, 'a/b')
  assert.equal(after.dead, undefined)
})

test('an empty table arrives as [] from json-c and an empty body asks for the table', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t)])
  const empty = await post(`${d.base}/cgi-bin/shared-state/emptytype`, '[]')
  assert.equal(empty.status, 200)
  assert.deepEqual(JSON.parse(empty.text), {})
  await post(`${d.base}/cgi-bin/shared-state/t1`, '{"k":{"data":1,"author":"W1","bleachTTL":9}}')
  assert.deepEqual(await table(d.base, 't1'), { k: { data: 1, author: 'W1', bleachTTL: 9 } })
})

test('a chunked request body, as uclient-fetch sends it, is accepted', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t)])
  const { hostname, port } = new URL(d.url)
  const body = JSON.stringify(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`host${i}`, { data: 'x'.repeat(60), author: 'W1', bleachTTL: 20 }])))
  const reply = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(
      { host: hostname, port, method: 'POST', path: '/cgi-bin/shared-state/chunky', headers: { 'user-agent': 'uclient-fetch', 'content-type': 'application/x-www-form-urlencoded', 'transfer-encoding': 'chunked' } },
      (res) => {
        let text = ''
        res.on('data', (c) => (text += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      },
    )
    req.on('error', reject)
    for (let i = 0; i < body.length; i += 1024) req.write(body.slice(i, i + 1024))
    req.end()
  })
  assert.equal(reply.status, 200)
  assert.equal(Object.keys(JSON.parse(reply.text)).length, 40)
})

test('?gzip compresses both bodies, as the CGI does', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t)])
  const res = await fetch(`${d.base}/cgi-bin/shared-state/zipped?gzip`, {
    method: 'POST',
    body: gzipSync(Buffer.from('{"a":{"data":"b","author":"W1","bleachTTL":5}}')),
  })
  assert.equal(res.status, 200)
  const raw = Buffer.from(await res.arrayBuffer())
  assert.equal(raw[0], 0x1f, 'the answer is gzip bytes, with no Content-Encoding for a client to undo')
  assert.equal(res.headers.get('content-encoding'), null)
  assert.deepEqual(JSON.parse(gunzipSync(raw).toString()), { a: { data: 'b', author: 'W1', bleachTTL: 5 } })
})

test('bad input gets a clear 4xx JSON error and changes nothing', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--max-body', '2048'])
  await post(`${d.base}/cgi-bin/shared-state/demo`, '{"k":{"data":1,"author":"W1","bleachTTL":9}}')
  const before = await table(d.base, 'demo')
  const cases: Array<{ what: string; url: string; body?: string | Uint8Array; method?: string; status: number; code: string }> = [
    { what: 'malformed JSON', url: '/cgi-bin/shared-state/demo', body: '{bad', status: 400, code: 'BAD_INPUT' },
    { what: 'wrong shape: entry not an object', url: '/cgi-bin/shared-state/demo', body: '{"x":5}', status: 400, code: 'BAD_INPUT' },
    { what: 'wrong shape: array', url: '/cgi-bin/shared-state/demo', body: '[1,2]', status: 400, code: 'BAD_INPUT' },
    { what: 'wrong shape: no author', url: '/cgi-bin/shared-state/demo', body: '{"k":{"data":2,"bleachTTL":50}}', status: 400, code: 'BAD_INPUT' },
    { what: 'wrong shape: TTL not an integer', url: '/cgi-bin/shared-state/demo', body: '{"k":{"data":2,"author":"A","bleachTTL":"50"}}', status: 400, code: 'BAD_INPUT' },
    { what: 'wrong shape: bad clock', url: '/cgi-bin/shared-state/demo', body: '{"k":{"data":2,"author":"A","bleachTTL":50,"clock":"x"}}', status: 400, code: 'BAD_INPUT' },
    { what: 'one bad entry among good ones', url: '/cgi-bin/shared-state/demo', body: '{"ok":{"data":2,"author":"A","bleachTTL":50},"bad":{"data":2}}', status: 400, code: 'BAD_INPUT' },
    { what: 'bad type name', url: '/cgi-bin/shared-state/de.mo', body: '{}', status: 400, code: 'BAD_INPUT' },
    { what: 'body over the limit', url: '/cgi-bin/shared-state/demo', body: `{"k":{"data":"${'x'.repeat(4096)}","author":"A","bleachTTL":50}}`, status: 413, code: 'TOO_LARGE' },
    { what: 'gzip bomb over the limit', url: '/cgi-bin/shared-state/demo?gzip', body: gzipSync(Buffer.from(`{"k":{"data":"${'x'.repeat(100_000)}","author":"A","bleachTTL":50}}`)), status: 413, code: 'TOO_LARGE' },
    { what: 'not gzip', url: '/cgi-bin/shared-state/demo?gzip', body: 'plain', status: 400, code: 'BAD_INPUT' },
    { what: 'wrong method', url: '/cgi-bin/shared-state/demo', method: 'PUT', body: '{}', status: 405, code: 'BAD_INPUT' },
    { what: 'GET', url: '/cgi-bin/shared-state/demo', method: 'GET', status: 405, code: 'BAD_INPUT' },
    { what: 'unknown path', url: '/cgi-bin/other/demo', body: '{}', status: 404, code: 'NOT_FOUND' },
  ]
  for (const c of cases) {
    const res = await fetch(d.base + c.url, { method: c.method ?? 'POST', body: c.body as BodyInit | undefined })
    const text = await res.text()
    assert.equal(res.status, c.status, `${c.what}: ${text}`)
    assert.match(res.headers.get('content-type') ?? '', /application\/json/, c.what)
    const error = JSON.parse(text).error
    assert.equal(error.code, c.code, c.what)
    assert.ok(error.message.length > 5, c.what)
  }
  assert.deepEqual(await table(d.base, 'demo'), before)
})

test('the multi-writer endpoint orders by change counter, then fortune', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t)])
  const url = `${d.base}/cgi-bin/shared-state-multiwriter/notes`
  const e = (data: string, changes: number, fortune: number) => ({ data, author: 'W1', changes, fortune, lastModified: 1 })
  let r = await post(url, JSON.stringify({ a: e('first', 1, 500), b: e('b', 0, 10) }))
  assert.equal(r.status, 200)
  r = await post(url, JSON.stringify({ a: e('stale', 0, 99999), b: e('tie-higher-fortune', 0, 11) }))
  const merged = JSON.parse(r.text)
  assert.equal(merged.a.data, 'first', 'fewer changes never win')
  assert.equal(merged.b.data, 'tie-higher-fortune')
  const bad = await post(url, JSON.stringify({ a: { data: 1, author: 'W1', bleachTTL: 3 } }))
  assert.equal(bad.status, 400, 'a TTL entry is not a multi-writer entry')
})
