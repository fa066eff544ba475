/**
 * `npm run bench -- async` (issue 13): a `bat-hosts` change written on a shared-state-async node, timed until
 * it reaches malla nodes' change feeds, against the same change reaching another shared-state-async node.
 *
 * The async nodes are test/helpers/async-node-double.ts (the C++ daemon's rules and schedule: it pushes each
 * type to its peers when the wall clock's seconds are a multiple of the type's update interval; its build
 * needs the internet, so it cannot run here). `bat-hosts` has LibreMesh's registration: update interval 30 s,
 * TTL 2400 s. Node C writes; C's peers are async node C2 (the baseline) and malla node M1 (`malla peer
 * --async-port 0`, defaults otherwise), which relays over HTTP to M2 and M3 (a chain, `--peer` both ways).
 * Each sample writes one new key at a random moment and times its arrival on C2 (callback in this process)
 * and in M1's, M2's and M3's feeds (subscribed beforehand). Then the other way: a write on M3, timed until C has it
 * (M1 has C as `--async-peer`). `--samples N` (default 4).
 */
import { AsyncNodeDouble } from '../test/helpers/async-node-double.js'
import { Cleanup } from './lib/cleanup.js'
import { sleep, startDaemon, type BenchDaemon } from './lib/daemon.js'
import { ChangeFeed, nowMs } from './lib/feed.js'
import { row, type BenchContext, type BenchResult } from './lib/result.js'
import { summarize } from './lib/stats.js'
import { freePorts } from './lib/ports.js'

const TYPE = 'bat-hosts'
const INTERVAL_S = 30

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const samples = Number(ctx.args[ctx.args.indexOf('--samples') + 1] ?? 4) || 4
  const cleanup = new Cleanup()
  try {
    const types = new Map([[TYPE, { updateInterval: INTERVAL_S, ttl: 2400 }]])
    const c = new AsyncNodeDouble('C', types)
    const c2 = new AsyncNodeDouble('C2', types)
    const cPort = await c.start()
    cleanup.add('stop C', () => c.stop())
    const arrivedC = new Map<string, number>()
    c.onChange = (_type, keys) => keys.forEach((k) => arrivedC.has(k) || arrivedC.set(k, nowMs()))
    const c2Port = await c2.start()
    cleanup.add('stop C2', () => c2.stop())
    const arrivedC2 = new Map<string, number>()
    c2.onChange = (_type, keys) => keys.forEach((k) => arrivedC2.has(k) || arrivedC2.set(k, nowMs()))

    // The malla chain M1 — M2 — M3, each given both neighbours with --peer, as `malla lab` does.
    const [p1, p2, p3] = (await freePorts(3)) as [number, number, number]
    const url = (p: number) => `http://127.0.0.1:${p}`
    const m1 = await startDaemon(['--port', String(p1), '--data', await cleanup.tempDir(), '--name', 'M1', '--peer', url(p2), '--async-port', '0', '--async-peer', `127.0.0.1:${cPort}`])
    cleanup.add('stop M1', () => m1.stop())
    const m1Async = Number(/shared-state-async listening port=(\d+)/.exec(m1.log.join('\n'))?.[1])
    const m2 = await startDaemon(['--port', String(p2), '--data', await cleanup.tempDir(), '--name', 'M2', '--peer', url(p1), '--peer', url(p3)])
    cleanup.add('stop M2', () => m2.stop())
    const m3 = await startDaemon(['--port', String(p3), '--data', await cleanup.tempDir(), '--name', 'M3', '--peer', url(p2)])
    cleanup.add('stop M3', () => m3.stop())
    const daemons: BenchDaemon[] = [m1, m2, m3]
    c.peers.push({ host: '127.0.0.1', port: c2Port }, { host: '127.0.0.1', port: m1Async })
    const feeds = await Promise.all(daemons.map((d) => ChangeFeed.open(d.base, [TYPE])))
    cleanup.add('close feeds', () => feeds.forEach((f) => f.close()))

    const toC2: number[] = []
    const toM1: number[] = []
    const perHop: number[] = []
    for (let i = 0; i < samples; i++) {
      await sleep(Math.floor(Math.random() * INTERVAL_S * 1000))
      const key = `02:00:00:00:00:${i.toString(16).padStart(2, '0')}`
      const at = nowMs()
      c.insert(TYPE, { [key]: `C_wlan${i}` })
      const limit = (INTERVAL_S + 10) * 1000
      const arrivals = await Promise.all(feeds.map((f) => f.arrival(key, limit)))
      // C2 hears of it only from C, whose push can miss a second when its event loop is late (as the C++ loop can).
      const deadline = Date.now() + limit
      while (!arrivedC2.has(key) && Date.now() < deadline) await sleep(10)
      const [a1, a2, a3] = arrivals
      if (a1 === undefined || a2 === undefined || a3 === undefined || !arrivedC2.has(key)) throw new Error(`sample ${i}: ${key} did not arrive everywhere (M1 ${a1}, M2 ${a2}, M3 ${a3}, C2 ${arrivedC2.get(key)}; C's last failed sync: ${c.lastError ?? 'none'})`)
      toC2.push((arrivedC2.get(key) as number) - at)
      toM1.push(a1 - at)
      perHop.push((a3 - a1) / 2)
      ctx.progress(`sample ${i + 1}/${samples}: C2 ${Math.round((arrivedC2.get(key) as number) - at)} ms, M1 ${Math.round(a1 - at)} ms, then ${((a3 - a1) / 2).toFixed(1)} ms per malla hop`)
    }
    // The other way: a write on the far malla node M3, to the async node C.
    const fromMalla: number[] = []
    for (let i = 0; i < samples; i++) {
      const key = `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`
      const at = nowMs()
      const res = await fetch(`${m3.base}/malla/v1/tables/${TYPE}/insert`, { method: 'POST', body: JSON.stringify({ [key]: `M3_wlan${i}` }) })
      if (res.status !== 200) throw new Error(`insert on M3 answered ${res.status}: ${await res.text()}`)
      const deadline = Date.now() + 10_000
      while (!arrivedC.has(key) && Date.now() < deadline) await sleep(2)
      if (!arrivedC.has(key)) throw new Error(`${key} written on M3 did not reach C within 10 s`)
      fromMalla.push((arrivedC.get(key) as number) - at)
      await sleep(200)
    }
    ctx.progress(`malla → async: ${fromMalla.map((v) => v.toFixed(1)).join(', ')} ms`)
    const baseline = summarize(toC2)
    return {
      title: 'a bat-hosts change written on a shared-state-async node, to malla nodes\' feeds',
      params: { samples, type: TYPE, updateIntervalSeconds: INTERVAL_S },
      rows: [
        row({ section: 'async node → malla', name: 'to the first malla node (M1)', unit: 'ms', value: summarize(toM1), baseline: { name: 'to an async node', value: baseline }, target: INTERVAL_S * 1000 }),
        row({ section: 'async node → malla', name: 'each malla hop after (M1 → M3, per hop)', unit: 'ms', value: summarize(perHop), baseline: { name: 'an async hop', value: baseline }, target: 10 }),
        row({ section: 'malla → async node', name: 'from the far malla node (M3, 3 hops) to C', unit: 'ms', value: summarize(fromMalla), baseline: { name: 'async node to async node', value: baseline } }),
      ],
      notes: [
        `The async nodes push a type when the wall clock's seconds are a multiple of its update interval (${INTERVAL_S} s for bat-hosts), as shared-state-async does: a change waits for that moment, on average half an interval.`,
        'malla takes it at once from the push, merges it and pushes it on over HTTP: the hops after the first cost milliseconds.',
        'M1 also syncs with C on its own schedule (each type once per its update interval, counted from M1\'s start), so it has a change at whichever comes first, C\'s push or its own exchange: sooner than C2, which waits for C\'s push.',
        'The other way, M1 pushes a change to its async peers (`--async-peer`) as soon as it has it, whatever the update interval: two malla hops and one async exchange.',
        'The async nodes follow the C++ daemon\'s rules (test/helpers/async-node-double.ts); the C++ daemon itself cannot be built here (its build fetches libretroshare).',
      ],
    }
  } finally {
    await cleanup.run()
  }
}
