import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { silentLogger } from '../../src/core/log.js'
import { parseTypeName } from '../../src/core/schema.js'
import type { Replica } from '../../src/replica/replica.js'
import type { TableRef } from '../../src/storage/table-store.js'
import { SyncEngine } from '../../src/sync/engine.js'
import type { SyncPipe } from '../../src/sync/links/channel-link.js'
import type { SyncLink } from '../../src/sync/links/link.js'

/**
 * The behaviour every sync link must have, run with real replicas and real carriers: each link's test file
 * calls `syncLinkSuite` with its own way of making nodes and joining them (HTTP between daemons, a werift data
 * channel, a data channel in Chromium). Nodes run the one sync engine with the relay policy, as routers do.
 */

/** A node as the suite sees it: a replica that other nodes can reach on this carrier. */
export interface SuiteNode {
  readonly name: string
  readonly replica: Replica
}

/** Two nodes joined: each one's link to the other, and a switch that drops everything between them. */
export interface SuiteConnection {
  /** `a`'s link to `b`. */
  readonly ab: SyncLink
  /** `b`'s link to `a`. */
  readonly ba: SyncLink
  /** Drops every message between the two, both ways, until heal(): a radio out of range. */
  cut(): void
  heal(): void
}

/** A far end that answers every request with garbage, and sends garbage requests when told. */
export interface GarbageFarEnd {
  /** The node's link to it. */
  readonly link: SyncLink
  /** Sends the node a volley of malformed, oversized and made-up requests. */
  attack(): Promise<void>
}

export interface SyncLinkFixture {
  node(name: string): Promise<SuiteNode>
  connect(a: SuiteNode, b: SuiteNode): Promise<SuiteConnection>
  garbage(node: SuiteNode): Promise<GarbageFarEnd>
  teardown(): Promise<void>
}

const REF: TableRef = { flavour: 'ttl', type: parseTypeName('suite') }

interface Running {
  readonly node: SuiteNode
  readonly engine: SyncEngine
}

/** What a table holds, comparable across nodes: each key's data and version. */
async function contents(node: SuiteNode): Promise<string> {
  const table = (await node.replica.read(REF)).table
  return JSON.stringify([...table].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

async function keys(node: SuiteNode): Promise<Set<string>> {
  return new Set((await node.replica.read(REF)).table.keys())
}

/** Polls (the replicas live in different places: a page, daemons) until `ok`, or fails after `ms` saying what did not happen. */
async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await sleep(10)
  }
}

const insert = (node: SuiteNode, values: Record<string, unknown>) => node.replica.insert(REF.type, Object.entries(values) as [string, never][])

function entries(prefix: string, n: number, size = 40): Record<string, unknown> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, { text: 'x'.repeat(size), i }]))
}

const tableChars = async (node: SuiteNode) => (await node.replica.read(REF)).text?.length ?? 0

export function syncLinkSuite(name: string, setup: () => Promise<SyncLinkFixture>): void {
  async function harness(t: { after(fn: () => unknown): void; diagnostic?(message: string): void }) {
    const fixture = await setup()
    const engines: SyncEngine[] = []
    t.after(async () => {
      await Promise.allSettled(engines.map((e) => e.stop()))
      await fixture.teardown()
    })
    async function node(nodeName: string): Promise<Running> {
      const n = await fixture.node(nodeName)
      // Short pauses after a failure, so that a heal shows within a test's time.
      const engine = new SyncEngine({ replica: n.replica, policy: { role: 'relay' }, log: silentLogger, debounceMs: 0, minBackoffMs: 50, maxBackoffMs: 200 })
      engine.start()
      engines.push(engine)
      return { node: n, engine }
    }
    async function connect(a: Running, b: Running): Promise<SuiteConnection> {
      const c = await fixture.connect(a.node, b.node)
      a.engine.add(c.ab)
      b.engine.add(c.ba)
      return c
    }
    return { fixture, node, connect }
  }

  describe(`sync links: ${name}`, () => {
    it('a change is pushed to the far end at once, both ways, one exchange each', { timeout: 60_000 }, async (t) => {
      const h = await harness(t)
      const [a, b] = [await h.node('A'), await h.node('B')]
      const c = await h.connect(a, b)
      await insert(a.node, { warm: 0 })
      await until('B has the warm-up entry', async () => (await keys(b.node)).has('warm'))
      await sleep(100)
      const before = c.ab.traffic.exchanges
      const linkBytes = c.ab.traffic.bytesSent + c.ab.traffic.bytesReceived
      const tableBefore = a.engine.tableTraffic(REF)
      await insert(a.node, { fromA: 1 })
      await until('B has the entry A wrote', async () => (await keys(b.node)).has('fromA'))
      await until('A counted its push', () => c.ab.traffic.exchanges > before, 2_000)
      await sleep(100)
      assert.equal(c.ab.traffic.exchanges - before, 1, 'one push carried it')
      // Counted for its table too, byte for byte; another table carried nothing.
      const tableAfter = a.engine.tableTraffic(REF)
      assert.equal(tableAfter.exchanges - tableBefore.exchanges, 1)
      assert.equal(tableAfter.bytesSent + tableAfter.bytesReceived - tableBefore.bytesSent - tableBefore.bytesReceived, c.ab.traffic.bytesSent + c.ab.traffic.bytesReceived - linkBytes)
      assert.ok(tableAfter.bytesSent > tableBefore.bytesSent)
      assert.deepEqual(a.engine.tableTraffic({ flavour: 'ttl', type: parseTypeName('other') }), { exchanges: 0, bytesSent: 0, bytesReceived: 0 })
      await insert(b.node, { fromB: 2 })
      await until('A has the entry B wrote', async () => (await keys(a.node)).has('fromB'))
      assert.equal(await contents(a.node), await contents(b.node))
    })

    it('a new link catches both tables up, sending what differs and not whole tables', { timeout: 60_000 }, async (t) => {
      const h = await harness(t)
      const [a, b] = [await h.node('A'), await h.node('B')]
      await insert(a.node, entries('a', 300))
      await insert(b.node, entries('b', 300))
      await insert(a.node, entries('shared', 300))
      await insert(b.node, entries('shared', 300))
      // Same keys, different versions: one of each pair wins, the same one on both sides.
      const c = await h.connect(a, b)
      await until('both have all 900 keys', async () => (await keys(a.node)).size === 900 && (await keys(b.node)).size === 900, 20_000)
      await until('both tables are the same', async () => (await contents(a.node)) === (await contents(b.node)), 10_000)
      const carried = [c.ab, c.ba].reduce((n, l) => n + l.traffic.bytesSent + l.traffic.bytesReceived, 0)
      const table = await tableChars(a.node)
      t.diagnostic?.(`catch-up carried ${carried} bytes for a ${table}-character table`)
      // Each side's 600 entries crossing once would be 4/3 of the table; LibreMesh's sync sends 3.3 tables' worth.
      // Where both ends start a reconciliation at once (HTTP neighbours), each carries all of it: twice that.
      const starters = [c.ab, c.ba].filter((l) => l.startsCatchUp ?? true).length
      assert.ok(carried < 2 * starters * table, `the catch-up carried ${carried} bytes for a ${table}-character table (${starters} sides started it)`)
    })

    it('a push lost in a cut is repaired once the link is back, with little more than what differs', { timeout: 60_000 }, async (t) => {
      const h = await harness(t)
      const [a, b] = [await h.node('A'), await h.node('B')]
      await insert(a.node, entries('k', 500, 100))
      const c = await h.connect(a, b)
      await until('B caught up', async () => (await keys(b.node)).size === 500, 20_000)
      await sleep(100)
      c.cut()
      await insert(a.node, { lost: 'in the cut' })
      await until('A saw its push to B fail', () => a.engine.health(c.ab).lastError !== undefined, 15_000)
      assert.equal((await keys(b.node)).has('lost'), false, 'nothing crossed the cut')
      const before = c.ab.traffic.bytesSent + c.ab.traffic.bytesReceived
      c.heal()
      await until('B has the entry written during the cut', async () => (await keys(b.node)).has('lost'), 15_000)
      await until('the link is healthy again', () => a.engine.health(c.ab).lastError === undefined, 5_000)
      const repair = c.ab.traffic.bytesSent + c.ab.traffic.bytesReceived - before
      const table = await tableChars(a.node)
      assert.ok(repair < table / 4, `the repair carried ${repair} bytes; the table is ${table} characters`)
      assert.equal(await contents(a.node), await contents(b.node))
    })

    it('partition and heal: writes on both sides meet, and the same copy of each key wins on both', { timeout: 60_000 }, async (t) => {
      const h = await harness(t)
      const [a, b] = [await h.node('A'), await h.node('B')]
      const c = await h.connect(a, b)
      await insert(a.node, { before: 0 })
      await until('B has the first entry', async () => (await keys(b.node)).has('before'))
      c.cut()
      await insert(a.node, { both: 'A', onlyA: 1 })
      await insert(b.node, { both: 'B', onlyB: 2 })
      await insert(b.node, { both: 'B again' })
      await until('both saw the cut', () => a.engine.health(c.ab).lastError !== undefined && b.engine.health(c.ba).lastError !== undefined, 15_000)
      c.heal()
      await until('the tables are the same again', async () => (await contents(a.node)) === (await contents(b.node)), 15_000)
      assert.deepEqual([...(await keys(a.node))].sort(), ['before', 'both', 'onlyA', 'onlyB'])
    })

    it('a chain relays a change to its far end, and nothing goes back where it came from', { timeout: 60_000 }, async (t) => {
      const h = await harness(t)
      const [a, b, c] = [await h.node('A'), await h.node('B'), await h.node('C')]
      const ab = await h.connect(a, b)
      await h.connect(b, c)
      await insert(a.node, { warm: 0 })
      await until('C has the warm-up entry', async () => (await keys(c.node)).has('warm'))
      await sleep(200)
      const backToA = ab.ba.traffic.exchanges
      for (let i = 0; i < 5; i++) await insert(a.node, { [`k${i}`]: i })
      await until('C has all five', async () => (await keys(c.node)).size === 6)
      await sleep(300)
      assert.equal(ab.ba.traffic.exchanges - backToA, 0, 'B sent nothing back to A')
      assert.equal(await contents(a.node), await contents(c.node))
    })

    it('what the far end wrote, reaching here another way, is not pushed back to it; a repair still brings it', { timeout: 60_000 }, async (t) => {
      const h = await harness(t)
      const [a, b] = [await h.node('A'), await h.node('B')]
      const c = await h.connect(a, b)
      await insert(a.node, { warm: 0 })
      await until('B has the warm-up entry', async () => (await keys(b.node)).has('warm'))
      await until('B knows who is at the far end', () => c.ba.name === 'A')
      await sleep(100)
      const before = c.ba.traffic.exchanges
      // As if it came through the routers or a third node: a copy written by A, which A does not hold (as after A
      // lost its tables).
      await b.node.replica.merge(REF.type, new Map([['byA', { data: 1, author: 'A', bleachTTL: 20 }]]))
      await sleep(300)
      assert.equal(c.ba.traffic.exchanges - before, 0, 'B pushed A nothing')
      // Someone else's entry in the same way does go to A, alone.
      await b.node.replica.merge(REF.type, new Map([['byZ', { data: 2, author: 'Z', bleachTTL: 20 }]]))
      await until('A has the third node\'s entry', async () => (await keys(a.node)).has('byZ'))
      await sleep(100)
      assert.equal(c.ba.traffic.exchanges - before, 1, 'one push, with the third node\'s entry')
      assert.equal((await keys(a.node)).has('byA'), false)
      // A node that lost its tables gets its own entries back from the periodic repair.
      await b.engine.syncNow(REF)
      await until('A has its own entry back', async () => (await keys(a.node)).has('byA'))
      assert.equal(await contents(a.node), await contents(b.node))
    })

    it('a triangle converges and then goes quiet: nothing loops', { timeout: 60_000 }, async (t) => {
      const h = await harness(t)
      const [a, b, c] = [await h.node('A'), await h.node('B'), await h.node('C')]
      const links = [await h.connect(a, b), await h.connect(b, c), await h.connect(c, a)]
      await insert(a.node, entries('a', 3))
      await insert(b.node, entries('b', 3))
      await insert(c.node, entries('c', 3))
      await until('all three have all nine', async () => (await Promise.all([a, b, c].map((n) => keys(n.node)))).every((k) => k.size === 9), 15_000)
      await until('all three tables are the same', async () => new Set(await Promise.all([a, b, c].map((n) => contents(n.node)))).size === 1)
      const exchanges = () => links.reduce((n, l) => n + l.ab.traffic.exchanges + l.ba.traffic.exchanges, 0)
      await sleep(300)
      const settled = exchanges()
      await sleep(700)
      assert.equal(exchanges() - settled, 0, 'no exchange after the tables agreed')
    })

    it('a far end that sends garbage changes nothing here and delays no other link', { timeout: 60_000 }, async (t) => {
      const h = await harness(t)
      const [a, b] = [await h.node('A'), await h.node('B')]
      const garbage = await h.fixture.garbage(a.node)
      a.engine.add(garbage.link)
      await h.connect(a, b)
      await insert(a.node, { first: 1 })
      await until('B has the entry', async () => (await keys(b.node)).has('first'))
      await until('the garbage link is known to be failing', () => a.engine.health(garbage.link).lastError !== undefined)
      assert.deepEqual([...(await keys(a.node))], ['first'], 'nothing the garbage far end said was merged')
      await garbage.attack()
      assert.deepEqual([...(await keys(a.node))], ['first'], 'no garbage request changed the table')
      const started = Date.now()
      await insert(a.node, { second: 2 })
      await until('B has the entry written after the attack', async () => (await keys(b.node)).has('second'))
      t.diagnostic?.(`after the attack, a change reached B in ${Date.now() - started} ms`)
      assert.equal(await contents(a.node), await contents(b.node))
    })
  })
}

/**
 * A pipe that a switch can cut: while cut, whatever either side sends is dropped (it is lost, as in the air;
 * the sender learns nothing). Channel fixtures wrap both ends of a pipe in one switch.
 */
export function cuttable(pipe: SyncPipe, isCut: () => boolean): SyncPipe {
  return {
    send: (text) => (isCut() ? undefined : pipe.send(text)),
    onMessage: (listener) => pipe.onMessage((text) => isCut() || listener(text)),
    onClose: (listener) => pipe.onClose(listener),
    close: () => pipe.close(),
  }
}
