import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { ip, listLinks, listNamespaces } from '../../src/node/lab/netns.js'
import { CLI } from '../helpers/processes.js'
import { cliIn, hex, namespaceGuard, needsRoot, watch } from './netns-helpers.js'

test('malla lab --netns: 3 routers in namespaces find each other by ff02::1 only, and every namespace goes at SIGTERM', async (t) => {
  if (!needsRoot(t)) return
  await namespaceGuard(t, /^malla-[0-9a-f]{6}-/)
  const lab = watch(spawn(process.execPath, [CLI, 'lab', '--netns', '--routers', '3', '--topology', 'chain', '--verbose'], { stdio: ['ignore', 'pipe', 'pipe'] }))
  t.after(async () => {
    if (lab.child.exitCode === null && lab.child.signalCode === null) lab.child.kill('SIGTERM')
    await lab.exited(20_000)
  })
  const routers = (await lab.waitForCount(/^router r\d /, 3, 30_000)).map((l) => l.split(' '))
  assert.deepEqual(routers, [
    ['router', 'r1', 'http://10.99.0.1:8080/'],
    ['router', 'r2', 'http://10.99.0.2:8080/'],
    ['router', 'r3', 'http://10.99.1.2:8080/'],
  ])
  const ns: Record<string, string> = {}
  for (const l of lab.lines) {
    const m = /^lab: router (\S+) namespace (\S+) /.exec(l)
    if (m) ns[m[1] as string] = m[2] as string
  }
  assert.deepEqual(Object.keys(ns), ['r1', 'r2', 'r3'])
  const runId = (/^malla-([0-9a-f]{6})-r1$/.exec(ns.r1 as string) as RegExpExecArray)[1] as string
  const present = await listNamespaces()
  for (const n of Object.values(ns)) assert.ok(present.includes(n), `${n} exists`)
  assert.doesNotMatch(lab.lines.join('\n'), / listening .* peers=/, 'no router was given --peer')

  // Only the veths the chain says: r2 has two, r1 and r3 one each; each namespace has a default route.
  assert.deepEqual((await listLinks(ns.r2)).filter((d) => d !== 'lo').sort(), [`m${runId}-0b`, `m${runId}-1a`])
  assert.match(await ip(['-n', ns.r1 as string, 'route', 'show', 'default']), /default via 10\.99\.0\.2 dev m[0-9a-f]{6}-0a/)

  const url = 'http://127.0.0.1:8080'
  const ins = await cliIn(ns.r1 as string, ['insert', 'demo', '--url', url], '{"from":"r1"}')
  assert.equal(ins.code, 0, ins.stderr)
  await lab.waitFor(/\[r3\] changed type=demo/, 20_000)
  const atR3 = await cliIn(ns.r3 as string, ['get', 'demo', '--url', url])
  assert.equal(JSON.parse(atR3.stdout).from.data, 'r1', atR3.stderr)

  await lab.waitForCount(/\[r2\] neighbour added .*source=discovered/, 2)
  const peers = await cliIn(ns.r2 as string, ['peers', '--url', url])
  assert.equal(peers.code, 0, peers.stderr)
  const list = peers.stdout.trim().split('\n').map((l) => JSON.parse(l) as { base: string; source: string })
  assert.equal(list.length, 2, peers.stdout)
  assert.ok(list.every((n) => n.source === 'discovered'))
  assert.deepEqual(list.map((n) => /%25(m[0-9a-f]{6}-\d[ab])\]:8080$/.exec(n.base)?.[1]).sort(), [`m${runId}-0b`, `m${runId}-1a`], 'one neighbour on each veth')

  lab.child.kill('SIGTERM')
  assert.equal(await lab.exited(20_000), 0)
  const left = await listNamespaces()
  for (const n of Object.values(ns)) assert.ok(!left.includes(n), `${n} deleted`)
  assert.deepEqual((await listLinks()).filter((d) => d.startsWith(`m${runId}-`)), [], 'no veth left in the host')
  assert.match(lab.lines.join('\n'), /lab: removed 3 namespaces and 2 veth pairs/)
})

test('a netns lab that fails to start, or crashes, leaves no namespace behind', async (t) => {
  if (!needsRoot(t)) return
  await namespaceGuard(t, /^malla-[0-9a-f]{6}-/)
  const before = new Set(await listNamespaces())
  const newOnes = async () => (await listNamespaces()).filter((n) => !before.has(n) && /^malla-[0-9a-f]{6}-/.test(n))

  // Failure while starting: the data directory cannot be made (a file is in the way), after the namespaces were.
  const failing = watch(spawn(process.execPath, [CLI, 'lab', '--netns', '--routers', '2', '--data', CLI], { stdio: ['ignore', 'pipe', 'pipe'] }))
  assert.notEqual(await failing.exited(30_000), 0)
  assert.match(failing.lines.join('\n'), /lab: router r1 namespace malla-[0-9a-f]{6}-r1/, 'the namespaces had been made')
  assert.match(failing.lines.join('\n'), /malla: .*(ENOTDIR|not a directory|EEXIST)/)
  assert.deepEqual(await newOnes(), [])

  // A crash (an uncaught exception) once the lab runs: the 'exit' handler kills the routers and deletes the namespaces.
  // The built modules, as the CLI runs them (their routers start dist/node/cli/main.js).
  const module = new URL('../../dist/node/lab/netns-lab.js', import.meta.url).href
  const topology = new URL('../../dist/node/lab/topology.js', import.meta.url).href
  const code = [
    `import { runNetnsLab } from ${JSON.stringify(module)}`,
    `import { namedGraph } from ${JSON.stringify(topology)}`,
    'const write = process.stdout.write.bind(process.stdout)',
    "process.stdout.write = (chunk, ...rest) => { if (String(chunk).startsWith('router r2 ')) setImmediate(() => { throw new Error('deliberate crash') }); return write(chunk, ...rest) }",
    "await runNetnsLab({ graph: namedGraph(2, 'chain'), port: 8080, verbose: false })",
  ].join('\n')
  const crashing = watch(spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] }))
  assert.equal(await crashing.exited(30_000), 1)
  const out = crashing.lines.join('\n')
  assert.match(out, /router r2 http:\/\/10\.99\.0\.2:8080\//)
  assert.match(out, /deliberate crash/)
  assert.deepEqual(await newOnes(), [], out)
})

test('malla lab --clean removes a leftover lab: its processes, its namespace and its veths', async (t) => {
  if (!needsRoot(t)) return
  const id = hex()
  const ns = `malla-${id}-r1`
  await namespaceGuard(t, new RegExp(`^${ns}$`))
  t.after(() => ip(['link', 'delete', `m${id}-1a`]).catch(() => {}))
  await ip(['netns', 'add', ns])
  // One pair with an end inside the namespace, one left wholly in the host (as a crash mid-setup could).
  await ip(['link', 'add', `m${id}-0a`, 'type', 'veth', 'peer', 'name', `m${id}-0b`, 'netns', ns])
  await ip(['link', 'add', `m${id}-1a`, 'type', 'veth', 'peer', 'name', `m${id}-1b`])
  const sleeper = watch(spawn('ip', ['netns', 'exec', ns, 'sleep', '600'], { stdio: ['ignore', 'pipe', 'pipe'] }))
  t.after(() => {
    sleeper.child.kill('SIGKILL')
    return sleeper.exited()
  })
  const deadline = Date.now() + 5000
  while ((await ip(['netns', 'pids', ns])).trim() === '') {
    assert.ok(Date.now() < deadline, 'the sleeper never entered the namespace')
    await new Promise((r) => setTimeout(r, 20))
  }

  const clean = watch(spawn(process.execPath, [CLI, 'lab', '--clean'], { stdio: ['ignore', 'pipe', 'pipe'] }))
  assert.equal(await clean.exited(30_000), 0, clean.lines.join('\n'))
  const out = clean.lines.join('\n')
  assert.match(out, new RegExp(`stopped 1 process in ${ns} \\(\\d+\\)`))
  assert.match(out, new RegExp(`removed namespace ${ns}`))
  assert.match(out, new RegExp(`removed veth m${id}-1[ab]`))
  assert.ok(!(await listNamespaces()).includes(ns))
  assert.deepEqual((await listLinks()).filter((d) => d.startsWith(`m${id}-`)), [])
  assert.notEqual(await sleeper.exited(5000), null, 'the process inside was stopped')
})

test('malla lab --netns and --clean refuse to run without root, saying so', async (t) => {
  if (!needsRoot(t)) return
  assert.equal(spawnSync('setpriv', ['--version']).status, 0, 'setpriv (util-linux) is needed')
  for (const args of [['lab', '--netns'], ['lab', '--clean']]) {
    // As nobody, but still able to read the checkout wherever it is (a clone under a private temp dir, say).
    const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=+dac_read_search', '--ambient-caps=+dac_read_search']
    const r = spawnSync('setpriv', [...asNobody, process.execPath, CLI, ...args], { encoding: 'utf8', timeout: 20_000 })
    assert.equal(r.status, 22, r.stderr)
    assert.match(r.stderr, /needs root/)
  }
})
