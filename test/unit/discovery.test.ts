import assert from 'node:assert/strict'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import type { Logger } from '../../src/core/log.js'
import { NeighbourDiscovery } from '../../src/node/discovery/neighbour-discovery.js'
import { candidates, canonicalIpv6, neighbourBase, ownAddresses, parsePingResponders } from '../../src/node/discovery/ping-output.js'

/** What `ping -6 -n -c 2 -i 0.2 -w 3 -I veth0 ff02::1` printed on this machine (iputils 20221126), with one host more. */
const IPUTILS = `PING ff02::1(ff02::1) from :: veth0: 56 data bytes
64 bytes from fe80::c84d:9dff:fea0:1367%veth0: icmp_seq=1 ttl=64 time=0.188 ms
64 bytes from fe80::d426:58ff:fe02:e6d9%veth0: icmp_seq=1 ttl=64 time=0.225 ms
64 bytes from FE80::0000:1%veth0: icmp_seq=1 ttl=64 time=0.3 ms (DUP!)
64 bytes from fe80::c84d:9dff:fea0:1367%veth0: icmp_seq=2 ttl=64 time=0.063 ms

--- ff02::1 ping statistics ---
2 packets transmitted, 2 received, +2 duplicates, 0% packet loss, time 203ms
rtt min/avg/max/mdev = 0.063/0.158/0.225/0.069 ms
`

test('the ping parser reads every responder once, from iputils, older iputils and busybox output', () => {
  assert.deepEqual(parsePingResponders(IPUTILS, 'veth0'), [
    { address: 'fe80::c84d:9dff:fea0:1367', iface: 'veth0' },
    { address: 'fe80::d426:58ff:fe02:e6d9', iface: 'veth0' },
    { address: 'fe80::1', iface: 'veth0' },
  ])
  // Older iputils print no zone; busybox says `seq=`; with name resolution the address is in parentheses.
  const old = '64 bytes from fe80::2: icmp_seq=1 ttl=64 time=0.1 ms\n64 bytes from fe80::3: seq=0 ttl=64 time=0.2 ms\n'
  assert.deepEqual(parsePingResponders(old, 'br-lan'), [
    { address: 'fe80::2', iface: 'br-lan' },
    { address: 'fe80::3', iface: 'br-lan' },
  ])
  const named = '64 bytes from node.lan (fe80::4%wlan0-mesh): icmp_seq=1 ttl=64 time=1 ms\n'
  assert.deepEqual(parsePingResponders(named, 'bat0'), [{ address: 'fe80::4', iface: 'wlan0-mesh' }])
  // Errors, headers and other lines are ignored.
  const noise = [
    'ping: unknown iface: nosuch',
    'PING ff02::1(ff02::1) from :: eth0: 56 data bytes',
    'From fe80::9%eth0 icmp_seq=1 Destination unreachable: Address unreachable',
    '64 bytes from not-an-address: icmp_seq=1 ttl=64',
    '',
  ].join('\n')
  assert.deepEqual(parsePingResponders(noise, 'eth0'), [])
  assert.deepEqual(parsePingResponders('', 'eth0'), [])
})

test('own addresses are dropped, whatever their spelling, and the rest become zoned base URLs', () => {
  const own = ownAddresses({
    lo: [{ address: '127.0.0.1' }, { address: '::1' }],
    veth0: [{ address: 'FE80::C84D:9DFF:FEA0:1367' }, { address: '10.99.0.1' }],
    gone: undefined,
  })
  assert.deepEqual([...own].sort(), ['::1', 'fe80::c84d:9dff:fea0:1367'])
  const found = candidates(IPUTILS, 'veth0', own)
  assert.deepEqual(found.map((r) => r.address), ['fe80::d426:58ff:fe02:e6d9', 'fe80::1'])
  assert.equal(neighbourBase(found[0]!, 8080), 'http://[fe80::d426:58ff:fe02:e6d9%25veth0]:8080')
  assert.equal(neighbourBase({ address: '2001:db8::7', iface: 'eth0' }, 80), 'http://[2001:db8::7]:80', 'no zone off link-local')
  assert.equal(canonicalIpv6('fe80:0:0:0:0:0:0:1%eth0'), 'fe80::1')
  assert.equal(canonicalIpv6('10.0.0.1'), undefined)
  assert.equal(canonicalIpv6('zz::1'), undefined)
})

/** A logger that keeps its lines. */
function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = []
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`)
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

/** A fake `ping` that prints the file `out` (so each probe can be given other responders), or does `body`. */
async function fakePing(t: { after(fn: () => unknown): void }, body?: string): Promise<{ command: string; set(output: string): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'malla-fake-ping-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const out = join(dir, 'out')
  await writeFile(out, '')
  const command = join(dir, 'ping')
  await writeFile(command, `#!/bin/sh\n${body ?? `cat '${out}'`}\n`)
  await chmod(command, 0o755)
  return { command, set: (output) => writeFile(out, output) }
}

const line = (addr: string, iface = 'v0') => `64 bytes from ${addr}%${iface}: icmp_seq=1 ttl=64 time=0.1 ms\n`

test('discovery adds each responder once and removes it after 3 probes without it', async (t) => {
  const ping = await fakePing(t)
  const added: string[] = []
  const removed: string[] = []
  const log = memoryLogger()
  const d = new NeighbourDiscovery({
    interfaces: ['v0'],
    port: 9000,
    intervalMs: 60_000,
    pingCommand: ping.command,
    ownAddresses: () => new Set(['fe80::1']),
    add: (b) => added.push(b),
    remove: (b) => removed.push(b),
    log,
  })
  await ping.set(line('fe80::1') + line('fe80::2') + line('fe80::3'))
  await d.probeAll()
  assert.deepEqual(added, ['http://[fe80::2%25v0]:9000', 'http://[fe80::3%25v0]:9000'], 'own address dropped')
  await d.probeAll()
  assert.equal(added.length, 2, 'known neighbours are not added again')
  await ping.set(line('fe80::2'))
  await d.probeAll()
  await d.probeAll()
  assert.deepEqual(removed, [], 'two misses are not enough')
  await ping.set(line('fe80::2') + line('fe80::3'))
  await d.probeAll()
  await ping.set(line('fe80::2'))
  for (let i = 0; i < 2; i++) await d.probeAll()
  assert.deepEqual(removed, [], 'being seen again resets the count')
  await d.probeAll()
  assert.deepEqual(removed, ['http://[fe80::3%25v0]:9000'])
  assert.deepEqual(d.known(), ['http://[fe80::2%25v0]:9000'])
  await d.stop()
})

test('a missing ping, a failing ping and a hanging ping are logged once, never thrown', async (t) => {
  const log = memoryLogger()
  const opts = { interfaces: ['v0'], port: 1, intervalMs: 60_000, add: () => {}, remove: () => {}, log }
  const missing = new NeighbourDiscovery({ ...opts, pingCommand: '/nonexistent/ping' })
  await missing.probeAll()
  await missing.probeAll()
  const errors = log.lines.filter((l) => l.startsWith('error discovery probe failed'))
  assert.equal(errors.length, 1, log.lines.join('\n'))
  assert.match(errors[0]!, /\/nonexistent\/ping not found: install iputils-ping/)

  const failing = await fakePing(t, "echo 'ping: unknown iface: v0' >&2; exit 2")
  await new NeighbourDiscovery({ ...opts, pingCommand: failing.command }).probeAll()
  assert.ok(log.lines.some((l) => /warn discovery probe failed .*exited with 2: ping: unknown iface: v0/.test(l)), log.lines.join('\n'))

  const hanging = await fakePing(t, `echo '${line('fe80::5').trim()}'; exec sleep 30`)
  const added: string[] = []
  const started = Date.now()
  await new NeighbourDiscovery({ ...opts, pingCommand: hanging.command, probeTimeoutMs: 300, add: (b) => added.push(b) }).probeAll()
  assert.ok(Date.now() - started < 5000, 'killed after its timeout')
  assert.ok(log.lines.some((l) => /did not finish within 300 ms and was killed/.test(l)))
  assert.deepEqual(added, ['http://[fe80::5%25v0]:1'], 'what it printed before the timeout still counts')
})

test('start probes at once and then every interval', async (t) => {
  const ping = await fakePing(t)
  await ping.set(line('fe80::7', 'v0'))
  const log = memoryLogger()
  const added: string[] = []
  const d = new NeighbourDiscovery({ interfaces: ['v0', 'v1'], port: 1, intervalMs: 50, pingCommand: ping.command, add: (b) => added.push(b), remove: () => {}, log })
  t.after(() => d.stop())
  d.start()
  const deadline = Date.now() + 5000
  while (!log.lines.some((l) => /discovery probe \{"round":3,/.test(l))) {
    assert.ok(Date.now() < deadline, `no third probe within 5 s:\n${log.lines.join('\n')}`)
    await new Promise((r) => setTimeout(r, 10))
  }
  await d.stop()
  assert.ok(log.lines.some((l) => /info discovery started .*"interfaces":"v0,v1"/.test(l)))
  assert.deepEqual(added, ['http://[fe80::7%25v0]:1'], 'found on the first probe, added once (both interfaces printed it)')
})

test('stop ends a probe in flight without waiting for its timeout', async (t) => {
  const ping = await fakePing(t, 'exec sleep 30')
  const d = new NeighbourDiscovery({ interfaces: ['v0'], port: 1, intervalMs: 60_000, pingCommand: ping.command, add: () => {}, remove: () => {}, log: memoryLogger() })
  d.start()
  const started = Date.now()
  await d.stop()
  assert.ok(Date.now() - started < 2000, `stop took ${Date.now() - started} ms`)
})
