import assert from 'node:assert/strict'
import { test } from 'node:test'
import { linkAddress, NAMESPACE_PATTERN, planNetns, planRoutes, VETH_PATTERN } from '../../src/node/lab/netns-lab.js'
import { adjacency, gridShape, isConnected, links, namedGraph, parseTopologyFile, TOPOLOGIES } from '../../src/node/lab/topology.js'

const degrees = (n: number, l: ReadonlyArray<readonly [number, number]>) => adjacency({ names: Array.from({ length: n }, (_, i) => `r${i}`), links: l }).map((a) => a.length)

test('chain, ring and full have the links their names say', () => {
  assert.deepEqual(links(4, 'chain'), [[0, 1], [1, 2], [2, 3]])
  assert.deepEqual(links(4, 'ring'), [[0, 1], [1, 2], [2, 3], [0, 3]])
  assert.deepEqual(links(2, 'ring'), [[0, 1]], 'a ring of 2 is one link, not two')
  assert.equal(links(5, 'full').length, 10)
  for (const t of TOPOLOGIES) assert.deepEqual(links(1, t), [], `${t} of 1 router`)
})

test('grid: near-square, each router linked right and down, connected for any size', () => {
  assert.deepEqual(gridShape(9), { rows: 3, cols: 3 })
  assert.deepEqual(gridShape(10), { rows: 3, cols: 4 })
  assert.deepEqual(gridShape(5), { rows: 2, cols: 3 })
  assert.deepEqual(gridShape(2), { rows: 1, cols: 2 })
  // 0 1 2
  // 3 4 5
  // 6 7 8
  assert.deepEqual(links(9, 'grid'), [[0, 1], [0, 3], [1, 2], [1, 4], [2, 5], [3, 4], [3, 6], [4, 5], [4, 7], [5, 8], [6, 7], [7, 8]])
  assert.deepEqual(degrees(9, links(9, 'grid')), [2, 3, 2, 3, 4, 3, 2, 3, 2])
  // 0 1 2
  // 3 4      (a short last row)
  assert.deepEqual(links(5, 'grid'), [[0, 1], [0, 3], [1, 2], [1, 4], [3, 4]])
  for (let n = 1; n <= 40; n++) {
    const l = links(n, 'grid')
    const { rows, cols } = gridShape(n)
    assert.ok(rows * cols >= n && (rows - 1) * cols < n && Math.abs(rows - cols) <= 1, `shape of ${n}`)
    assert.ok(isConnected({ names: namedGraph(n, 'grid').names, links: l }), `grid of ${n} connected`)
    assert.ok(l.every(([a, b]) => b === a + 1 || b === a + cols), `grid of ${n}: only right and down links`)
  }
})

test('random: connected, no duplicate or self links, at least a spanning tree, and the same for the same seed', () => {
  for (let seed = 0; seed < 200; seed++) {
    for (const n of [2, 3, 7, 20]) {
      const g = namedGraph(n, 'random', seed)
      assert.ok(isConnected(g), `n=${n} seed=${seed} connected`)
      const keys = g.links.map(([a, b]) => `${a}-${b}`)
      assert.equal(new Set(keys).size, keys.length, 'no link twice')
      assert.ok(g.links.every(([a, b]) => a < b && b < n), 'ordered pairs of existing routers')
      assert.ok(g.links.length >= n - 1 && g.links.length <= Math.min((n * (n - 1)) / 2, n - 1 + Math.floor(n / 2)))
    }
  }
  assert.deepEqual(links(12, 'random', 42), links(12, 'random', 42), 'deterministic')
  assert.notDeepEqual(links(12, 'random', 42), links(12, 'random', 43), 'another seed, another mesh')
  // Pinned, so a change to the generator (which would change every user's seeded lab) is seen.
  assert.deepEqual(links(6, 'random', 7), [[0, 1], [0, 3], [1, 2], [1, 3], [1, 4], [2, 4], [2, 5], [3, 4]])
})

test('a topology file is validated with messages that say what is wrong', () => {
  const g = parseTopologyFile('{"nodes":["a","b","c"],"links":[["a","b"],["c","b"]]}')
  assert.deepEqual(g, { names: ['a', 'b', 'c'], links: [[0, 1], [1, 2]] })
  assert.deepEqual(parseTopologyFile('{"nodes":["solo"],"links":[]}'), { names: ['solo'], links: [] })
  const cases: Array<[string, RegExp]> = [
    ['{nope', /not valid JSON/],
    ['[]', /expected an object/],
    ['{"links":[]}', /"nodes" must be a non-empty array/],
    ['{"nodes":[],"links":[]}', /"nodes" must be a non-empty array/],
    ['{"nodes":["a","a"],"links":[]}', /node "a" is listed twice/],
    ['{"nodes":["a b"],"links":[]}', /nodes\[0\] must be a name/],
    ['{"nodes":["../x"],"links":[]}', /nodes\[0\] must be a name/],
    ['{"nodes":[7],"links":[]}', /nodes\[0\] must be a name/],
    [`{"nodes":["${'x'.repeat(33)}"],"links":[]}`, /nodes\[0\] must be a name of 1 to 32/],
    ['{"nodes":["a","b"]}', /"links" must be an array/],
    ['{"nodes":["a","b"],"links":[["a"]]}', /links\[0\] must be a pair/],
    ['{"nodes":["a","b"],"links":[["a","b","c"]]}', /links\[0\] must be a pair/],
    ['{"nodes":["a","b"],"links":[["a","z"]]}', /links\[0\] names "z", which is not in "nodes"/],
    ['{"nodes":["a","b"],"links":[["a","a"]]}', /links\[0\] links "a" to itself/],
    ['{"nodes":["a","b"],"links":[["a","b"],["b","a"]]}', /links\[1\] repeats the link b-a/],
    ['{"nodes":["a","b","c"],"links":[["a","b"]]}', /every node needs a link; not linked: c/],
  ]
  for (const [text, message] of cases) {
    assert.throws(() => parseTopologyFile(text, 'mesh.json'), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'BAD_INPUT', text)
      assert.match(e.message, /^mesh\.json: /)
      assert.match(e.message, message, text)
      return true
    })
  }
  // Disconnected but every node linked: allowed (a partitioned lab), and detectable.
  const split = parseTopologyFile('{"nodes":["a","b","c","d"],"links":[["a","b"],["c","d"]]}')
  assert.equal(isConnected(split), false)
})

test('the netns plan: one namespace per router, one /30 and one veth pair per link, names the cleaner recognises', () => {
  const plan = planNetns(namedGraph(3, 'chain'), 'ab12cd')
  assert.deepEqual(plan.map((p) => p.ns), ['malla-ab12cd-r1', 'malla-ab12cd-r2', 'malla-ab12cd-r3'])
  assert.deepEqual(plan[1]?.ifaces, [
    { dev: 'mab12cd-0b', cidr: '10.99.0.2/30', address: '10.99.0.2', peer: 'r1', peerAddress: '10.99.0.1' },
    { dev: 'mab12cd-1a', cidr: '10.99.1.1/30', address: '10.99.1.1', peer: 'r3', peerAddress: '10.99.1.2' },
  ])
  assert.equal(plan[0]?.ifaces[0]?.peerAddress, '10.99.0.2', "r1's default route goes to r2")
  for (const p of plan) {
    assert.match(p.ns, NAMESPACE_PATTERN)
    for (const f of p.ifaces) {
      assert.match(f.dev, VETH_PATTERN)
      assert.ok(f.dev.length <= 15, 'fits IFNAMSIZ')
    }
  }
  assert.equal(linkAddress(255, 1), '10.99.255.2')
  assert.equal(linkAddress(256, 0), '10.100.0.1')
  const big = planNetns(namedGraph(200, 'full'), 'ffffff')
  assert.ok(big.every((p) => p.ifaces.every((f) => f.dev.length <= 15)))
  assert.doesNotMatch('mallatest-abcdef-a', NAMESPACE_PATTERN)
})

test('planRoutes: every router gets a route to every link it is not on, via the first hop of a shortest path', () => {
  const chain = namedGraph(4, 'chain')
  const plans = planNetns(chain, 'ab12cd')
  const routes = planRoutes(chain, plans)
  assert.deepEqual(routes[0], [
    ['10.99.1.0/30', '10.99.0.2', 'mab12cd-0a'],
    ['10.99.2.0/30', '10.99.0.2', 'mab12cd-0a'],
  ])
  assert.deepEqual(routes[1], [['10.99.2.0/30', '10.99.1.2', 'mab12cd-1a']])
  assert.deepEqual(routes[3], [
    ['10.99.0.0/30', '10.99.2.1', 'mab12cd-2b'],
    ['10.99.1.0/30', '10.99.2.1', 'mab12cd-2b'],
  ])
  // In a ring of 6 the far side is reached the short way round, each way.
  const ring = namedGraph(6, 'ring')
  const ringRoutes = planRoutes(ring, planNetns(ring, 'ab12cd'))
  for (const r of ringRoutes) assert.equal(r.length, 6 - 2, 'a route to each link not attached')
  const viaOf = (subnet: string) => ringRoutes[0]?.find(([s]) => s === subnet)?.[2]
  assert.equal(viaOf('10.99.1.0/30'), 'mab12cd-0a', 'r2-r3 via r2')
  assert.equal(viaOf('10.99.4.0/30'), 'mab12cd-5a', 'r5-r6 via r6 (link 5 is r1-r6)')
})
