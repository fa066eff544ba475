import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { CLI, runCli, startDaemon, tempDir } from '../helpers/processes.js'

const COMMANDS = ['peer', 'get', 'insert', 'remove', 'bleach', 'sync', 'reqsync', 'dump', 'watch', 'peers', 'join', 'key', 'lab', 'build-static']

test('--help works on every command', async () => {
  const top = await runCli(['--help'])
  assert.equal(top.code, 0)
  for (const c of COMMANDS) assert.match(top.stdout, new RegExp(`\\b${c}\\b`))
  for (const c of COMMANDS) {
    const r = await runCli([c, '--help'])
    assert.equal(r.code, 0, c)
    assert.match(r.stdout, new RegExp(`^Usage: malla ${c}`), c)
  }
  const unknown = await runCli(['frobnicate'])
  assert.equal(unknown.code, 22, 'usage errors exit 22, as bad input does')
  assert.match(unknown.stderr, /unknown command/)
  for (const args of [['peer', '--bogus'], ['peer', '--port', 'abc'], ['get']]) assert.equal((await runCli(args)).code, 22, args.join(' '))
  // Defaults in the units the flags take.
  const peer = (await runCli(['peer', '--help'])).stdout.replace(/\s+/g, ' ')
  assert.match(peer, /--bleach-interval <seconds> how often every table is bleached \(default: 120\)/)
  assert.match(peer, /--timeout <seconds> per request to a peer \(default: 3\)/)
  const version = await runCli(['--version'])
  assert.equal(version.code, 0)
  assert.equal(version.stdout.trim(), JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')).version)
})

test('a fatal start error ends the process at once, with a message saying what to change', async (t) => {
  // A port in use: the daemon stops what it had started and exits (it used to print the error and stay).
  const holder = createServer()
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
  t.after(() => holder.close())
  const port = (holder.address() as { port: number }).port
  const busy = await runCli(['peer', '--host', '127.0.0.1', '--port', String(port), '--stun-port', '0', '--data', await tempDir(t)], '', 10_000)
  assert.equal(busy.code, 75, busy.stderr)
  assert.match(busy.stderr, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use .*--port`))
  // The same for shared-state-async's port, and for its flags' values.
  const asyncBusy = await runCli(['peer', '--host', '127.0.0.1', '--port', '0', '--stun-port', '0', '--async-port', String(port), '--data', await tempDir(t)], '', 10_000)
  assert.equal(asyncBusy.code, 75, asyncBusy.stderr)
  assert.match(asyncBusy.stderr, new RegExp(`--async-port ${port} on 127\\.0\\.0\\.1 is in use`))
  for (const [flag, value, says] of [['--async-types', 'bat-hosts:0', /update interval of bat-hosts/], ['--async-types', 'no spaces', /not a type name/], ['--async-peer', '[::1', /expected host, host:port/], ['--types', 'a,b c', /not a type name/]] as const) {
    const bad = await runCli(['peer', '--host', '127.0.0.1', '--port', '0', '--stun-port', '0', flag, value, '--data', await tempDir(t)], '', 10_000)
    assert.equal(bad.code, 22, `${flag} ${value}: ${bad.stderr}`)
    assert.match(bad.stderr, says)
  }
  const badRoom = await runCli(['join', 'no spaces', '--url', 'http://127.0.0.1:1'], '', 10_000)
  assert.equal(badRoom.code, 22)
  assert.match(badRoom.stderr, /bad room name/)
})

test('the CLI mirrors LibreMesh\'s shared-state verbs on a data directory, with the same JSON', async (t) => {
  const dir = await tempDir(t)
  const data = ['--data', dir, '--name', 'W1']
  assert.equal((await runCli(['insert', 'demo', ...data], '{"hello":"world","path":"a/b","obj":{},"list":[1,2]}')).code, 0)
  assert.equal((await runCli(['remove', 'demo', ...data], '["list","never-existed"]')).code, 0)
  const got = await runCli(['get', 'demo', ...data])
  assert.equal(got.code, 0)
  const table = JSON.parse(got.stdout)
  assert.deepEqual(Object.keys(table).sort(), ['hello', 'list', 'obj', 'path'], 'removing an absent key writes nothing, as in LibreMesh')
  assert.deepEqual({ ...table.hello, clock: undefined }, { data: 'world', author: 'W1', bleachTTL: 30, clock: undefined })
  assert.equal(table.list.data, null)
  // The file is the table object itself, LibreMesh's layout.
  assert.deepEqual(JSON.parse(await readFile(join(dir, 'demo.json'), 'utf8')), table)

  assert.equal((await runCli(['insert', 'demo', ...data, '--ttl', '2'], '{"short":1}')).code, 0)
  assert.equal((await runCli(['bleach', 'demo', ...data])).code, 0)
  let after = JSON.parse((await runCli(['get', 'demo', ...data])).stdout)
  assert.equal(after.short.bleachTTL, 1)
  assert.equal(after.hello.bleachTTL, 29)
  await runCli(['bleach', 'demo', ...data])
  after = JSON.parse((await runCli(['get', 'demo', ...data])).stdout)
  assert.equal(after.short, undefined, 'below 2, dropped')

  const dump = await runCli(['dump', 'demo', ...data])
  const lines = dump.stdout.trim().split('\n').map((l) => JSON.parse(l))
  assert.deepEqual(lines.map((l) => l.key), ['hello', 'list', 'obj', 'path'])
  assert.equal(lines[0].author, 'W1')

  const req = await runCli(['reqsync', 'demo', ...data], '{"remote":{"data":"r","author":"W2","bleachTTL":30},"hello":{"data":"stale","author":"W2","bleachTTL":5}}')
  assert.equal(req.code, 0)
  const merged = JSON.parse(req.stdout)
  assert.equal(merged.remote.data, 'r')
  assert.equal(merged.hello.data, 'world')

  const mw = ['--data', dir, '--name', 'W1', '--multiwriter']
  await runCli(['insert', 'notes', ...mw], '{"k":"v1"}')
  await runCli(['insert', 'notes', ...mw], '{"k":"v2"}')
  const notes = JSON.parse((await runCli(['get', 'notes', ...mw])).stdout)
  assert.equal(notes.k.changes, 1)
  assert.equal(notes.k.data, 'v2')
  assert.ok(notes.k.fortune >= 1 && notes.k.fortune <= 100000)
  assert.deepEqual(JSON.parse(await readFile(join(dir, 'multiwriter', 'notes.json'), 'utf8')), notes)
})

test('bad input exits with LibreMesh\'s status 22 and a clear message, changing nothing', async (t) => {
  const dir = await tempDir(t)
  const data = ['--data', dir]
  await runCli(['insert', 'demo', ...data], '{"keep":1}')
  const before = (await runCli(['get', 'demo', ...data])).stdout
  const cases: Array<[string[], string, RegExp]> = [
    [['insert', 'demo', ...data], '{bad', /stdin is not valid JSON/],
    [['insert', 'demo', ...data], '[1,2]', /JSON object of key/],
    [['remove', 'demo', ...data], '{"k":1}', /JSON array of key strings/],
    [['reqsync', 'demo', ...data], '{"k":5}', /entry "k"/],
    [['insert', 'de/mo', ...data], '{"k":1}', /bad type name/],
    [['insert', 'demo', ...data, '--ttl', '0'], '{"k":1}', /bad TTL/],
    [['get', 'demo', '--data', dir, '--url', 'http://127.0.0.1:1'], '', /not both/],
    [['sync', 'demo', ...data, 'ftp://x'], '', /not an endpoint URL/],
    [['sync', 'demo', ...data], '', /give the endpoint URLs/],
  ]
  for (const [args, input, message] of cases) {
    const r = await runCli(args, input)
    assert.equal(r.code, 22, `${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, message)
  }
  assert.equal((await runCli(['get', 'demo', ...data])).stdout, before)
  const down = await runCli(['get', 'demo', '--url', 'http://127.0.0.1:9'])
  assert.equal(down.code, 69)
  assert.match(down.stderr, /cannot reach the daemon/)
})

test('the CLI drives a running daemon with --url, and reqsync is a neighbour\'s POST', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--name', 'D'])
  await runCli(['insert', 'demo', '--url', d.base, '--ttl', '7'], '{"a":1}')
  const r = await runCli(['reqsync', 'demo', '--url', d.base], '{"b":{"data":2,"author":"X","bleachTTL":9}}')
  assert.equal(r.code, 0, r.stderr)
  const t1 = JSON.parse(r.stdout)
  assert.equal(t1.a.author, 'D')
  assert.equal(t1.a.bleachTTL, 7)
  assert.equal(t1.b.data, 2)
  const bad = await runCli(['reqsync', 'demo', '--url', d.base], '{"b":{"data":2}}')
  assert.equal(bad.code, 22)
  assert.match(bad.stderr, /author/)
})

test('the daemon and CLI processes writing one directory at once lose no update', async (t) => {
  const dir = await tempDir(t)
  const d = await startDaemon(t, ['--data', dir, '--name', 'D'])
  const cliWriter = async (w: number) => {
    for (let i = 0; i < 8; i++) {
      const r = await runCli(['insert', 'shared', '--data', dir, '--name', `cli${w}`], JSON.stringify({ [`cli${w}-${i}`]: i }))
      assert.equal(r.code, 0, r.stderr)
    }
  }
  const httpWriter = async () => {
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`${d.base}/malla/v1/tables/shared/insert`, { method: 'POST', body: JSON.stringify({ [`http-${i}`]: i }) })
      assert.equal(res.status, 200)
    }
  }
  await Promise.all([cliWriter(1), cliWriter(2), cliWriter(3), httpWriter(), httpWriter()])
  const expected = [...[1, 2, 3].flatMap((w) => Array.from({ length: 8 }, (_, i) => `cli${w}-${i}`)), ...Array.from({ length: 40 }, (_, i) => `http-${i}`)]
  const onDisk = JSON.parse(await readFile(join(dir, 'shared.json'), 'utf8'))
  const viaDaemon = JSON.parse((await runCli(['get', 'shared', '--url', d.base])).stdout)
  for (const k of expected) {
    assert.ok(onDisk[k], `${k} on disk`)
    assert.ok(viaDaemon[k], `${k} seen by the daemon`)
  }
  // The daemon noticed the CLI's writes by itself (so hooks and sync follow them).
  await d.waitForLog(/changed type=shared keys=\d+ origin=external/)
})

test('the developer page at /debug/ and the change stream show a router\'s tables live', async (t) => {
  const d = await startDaemon(t, ['--data', await tempDir(t), '--name', 'pagey'])
  const page = await fetch(`${d.base}/debug/`)
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-type') ?? '', /text\/html/)
  const html = await page.text()
  assert.match(html, /malla router <span id="name">pagey<\/span>/)
  assert.match(html, /EventSource\('\/malla\/v1\/' \+ 'events'\)|EventSource\(base \+ 'events'\)/)

  const controller = new AbortController()
  t.after(() => controller.abort())
  const stream = await fetch(`${d.base}/malla/v1/events`, { signal: controller.signal })
  assert.match(stream.headers.get('content-type') ?? '', /text\/event-stream/)
  const reader = stream.body!.getReader()
  await reader.read() // the opening comment: subscribed
  await runCli(['insert', 'live', '--url', d.base], '{"x":1,"y":2}')
  let text = ''
  const deadline = Date.now() + 5000
  while (!text.includes('event: change') && Date.now() < deadline) text += new TextDecoder().decode((await reader.read()).value)
  const data = JSON.parse((/event: change\ndata: (.*)/.exec(text) as RegExpExecArray)[1] as string)
  assert.match(data.cursor, /^\w+\.1$/)
  assert.deepEqual({ ...data, cursor: undefined, keys: [...data.keys].sort() }, {
    cursor: undefined,
    flavour: 'ttl',
    type: 'live',
    keys: ['x', 'y'],
    origin: 'local',
    entries: { x: { ...data.entries.x, data: 1, author: 'pagey' }, y: { ...data.entries.y, data: 2, author: 'pagey' } },
  })
  const list = await (await fetch(`${d.base}/malla/v1/tables`)).json()
  assert.deepEqual(list, [{ flavour: 'ttl', type: 'live', size: 2 }])
})

test('malla lab starts N routers wired as the topology says and stops them all on SIGTERM', async (t) => {
  const basePort = 20000 + Math.floor(Math.random() * 20000)
  const lab = spawn(process.execPath, [CLI, 'lab', '--routers', '3', '--topology', 'ring', '--base-port', String(basePort), '--verbose'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => lab.kill('SIGKILL'))
  let stdout = ''
  let stderr = ''
  lab.stdout.on('data', (d) => (stdout += d))
  lab.stderr.on('data', (d) => (stderr += d))
  const until = async (cond: () => boolean, what: string) => {
    const deadline = Date.now() + 15_000
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`${what} did not happen; stderr:\n${stderr}`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  await until(() => stdout.split('\n').filter((l) => l.startsWith('router ')).length === 3, 'three routers listed')
  const routers = stdout.trim().split('\n').map((l) => l.split(' '))
  assert.deepEqual(routers, [1, 2, 3].map((i) => ['router', `r${i}`, `http://127.0.0.1:${basePort + i - 1}/`]))
  assert.match(stderr, /\[r1\] listening .*peers=http:\/\/127.0.0.1:\d+,http:\/\/127.0.0.1:\d+/, 'in a ring of 3, each router has 2 peers')

  await runCli(['insert', 'demo', '--url', `http://127.0.0.1:${basePort}`], '{"from":"r1"}')
  await until(() => /\[r3\] changed type=demo/.test(stderr), 'the insert reaching r3')
  const atR3 = JSON.parse((await runCli(['get', 'demo', '--url', `http://127.0.0.1:${basePort + 2}`])).stdout)
  assert.equal(atR3.from.data, 'r1')
  const page = await fetch(`http://127.0.0.1:${basePort + 1}/debug/`)
  assert.match(await page.text(), /malla router <span id="name">r2<\/span>/)

  const dataDir = (/data=(\S+)\/r1/.exec(stderr) as RegExpExecArray)[1] as string
  const exited = new Promise<number | null>((resolve) => lab.once('exit', (code) => resolve(code)))
  lab.kill('SIGTERM')
  assert.equal(await exited, 0)
  for (let i = 0; i < 3; i++) {
    await assert.rejects(fetch(`http://127.0.0.1:${basePort + i}/`), 'router stopped')
  }
  await assert.rejects(readFile(join(dataDir, 'r1', 'demo.json')), 'temporary data removed')
})

test('malla lab is quiet by default: its URLs and how to use them, and no routine router lines', async (t) => {
  const basePort = 20000 + Math.floor(Math.random() * 20000)
  const lab = spawn(process.execPath, [CLI, 'lab', '--routers', '2', '--base-port', String(basePort)], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => lab.kill('SIGKILL'))
  let stdout = ''
  let stderr = ''
  lab.stdout.on('data', (d) => (stdout += d))
  lab.stderr.on('data', (d) => (stderr += d))
  const deadline = Date.now() + 15_000
  while (!stderr.includes('Ctrl-C')) {
    if (Date.now() > deadline) assert.fail(`the lab did not start; stderr:\n${stderr}`)
    await new Promise((r) => setTimeout(r, 20))
  }
  const urls = [0, 1].map((i) => `http://127.0.0.1:${basePort + i}/`)
  assert.equal(stdout, urls.map((u, i) => `router r${i + 1} ${u}\n`).join(''))
  assert.ok(stderr.includes(`lab: open ${urls[0]} and ${urls[1]} in two browser windows`), stderr)
  // Routine traffic a browser makes: the app, a missing favicon, writes that spread.
  const app = await fetch(urls[0] as string)
  assert.match(await app.text(), /<div id="app">/)
  assert.equal((await fetch(`${urls[0]}favicon.ico`)).status, 404)
  await runCli(['insert', 'demo', '--url', (urls[0] as string).slice(0, -1)], '{"k":"v"}')
  await new Promise((r) => setTimeout(r, 500))
  const lines = stderr.trim().split('\n')
  assert.deepEqual(lines.filter((l) => !l.startsWith('lab: ')), [], 'nothing but the lab\'s own lines')
  assert.ok(lines.length <= 3, stderr)
  // SIGTERM, not the SIGKILL of t.after: the lab stops its routers, which hold this test's pipes.
  const exited = new Promise<number | null>((resolve) => lab.once('exit', (code) => resolve(code)))
  lab.kill('SIGTERM')
  assert.equal(await exited, 0)
})

test('malla build-static writes the web app as plain files, and refuses a non-empty folder without --force', async (t) => {
  const dir = join(await tempDir(t), 'www')
  const r = await runCli(['build-static', dir])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^index\.html \d+ bytes \(\d+ gzip\)$/m)
  const html = await readFile(join(dir, 'index.html'), 'utf8')
  // Relative asset URLs: the folder works from any path of any web server (/www/malla on a router).
  for (const m of html.matchAll(/(?:src|href)="([^"]+)"/g)) assert.match(m[1] as string, /^\.\//, `relative: ${m[1]}`)
  const again = await runCli(['build-static', dir])
  assert.equal(again.code, 22)
  assert.match(again.stderr, /not empty; --force/)
  assert.equal((await runCli(['build-static', dir, '--force'])).code, 0)
})
