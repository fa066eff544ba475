import { MallaError } from '../../core/errors.js'

export const TOPOLOGIES = ['chain', 'ring', 'full', 'grid', 'random'] as const
export type Topology = (typeof TOPOLOGIES)[number]

/** A lab's routers and the links between them (indexes into `names`, each link once, a < b). */
export interface LabGraph {
  readonly names: readonly string[]
  readonly links: ReadonlyArray<readonly [number, number]>
}

/** Grid dimensions for n routers: as square as possible, rows filled first, the last row may be short. */
export function gridShape(n: number): { rows: number; cols: number } {
  const cols = Math.max(1, Math.ceil(Math.sqrt(n)))
  return { rows: Math.ceil(n / cols), cols }
}

/** A small seeded generator (mulberry32): the same seed gives the same random topology everywhere. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const ordered = (a: number, b: number): [number, number] => (a < b ? [a, b] : [b, a])

/**
 * Undirected links between routers 0..n-1 for a named shape:
 * - chain: 0-1-2-...; ring: a chain closed (n > 2);
 * - full: every pair;
 * - grid: a near-square grid (`gridShape`), each router linked right and down;
 * - random: connected for any seed: a random spanning tree (each router, in shuffled order, linked to one
 *   placed before it) plus about n/2 extra distinct random links. Deterministic for a given seed.
 */
export function links(n: number, topology: Topology, seed = 1): Array<[number, number]> {
  const out: Array<[number, number]> = []
  switch (topology) {
    case 'full':
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) out.push([i, j])
      return out
    case 'grid': {
      const { cols } = gridShape(n)
      for (let i = 0; i < n; i++) {
        if ((i % cols) + 1 < cols && i + 1 < n) out.push([i, i + 1])
        if (i + cols < n) out.push([i, i + cols])
      }
      return out
    }
    case 'random': {
      const rnd = seededRandom(seed)
      const pick = (k: number) => Math.floor(rnd() * k)
      const order = Array.from({ length: n }, (_, i) => i)
      for (let i = n - 1; i > 0; i--) {
        const j = pick(i + 1)
        ;[order[i], order[j]] = [order[j] as number, order[i] as number]
      }
      const have = new Set<string>()
      const add = (a: number, b: number) => {
        const [x, y] = ordered(a, b)
        if (x === y || have.has(`${x}-${y}`)) return false
        have.add(`${x}-${y}`)
        out.push([x, y])
        return true
      }
      for (let i = 1; i < n; i++) add(order[i] as number, order[pick(i)] as number)
      const possible = (n * (n - 1)) / 2
      let extra = Math.min(Math.floor(n / 2), possible - out.length)
      for (let tries = 0; extra > 0 && tries < 100 * n; tries++) if (add(pick(n), pick(n))) extra--
      return out.sort((p, q) => p[0] - q[0] || p[1] - q[1])
    }
    case 'chain':
    case 'ring':
      for (let i = 0; i + 1 < n; i++) out.push([i, i + 1])
      if (topology === 'ring' && n > 2) out.push([0, n - 1])
      return out
  }
}

/** Routers r1..rN linked as the named shape says. */
export function namedGraph(n: number, topology: Topology, seed?: number): LabGraph {
  return { names: Array.from({ length: n }, (_, i) => `r${i + 1}`), links: links(n, topology, seed) }
}

/** Router names usable in namespace and file names. */
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/

/**
 * Reads `{"nodes": ["a", "b", ...], "links": [["a", "b"], ...]}`: unique names, each link between two
 * distinct known nodes, no link twice, every node on at least one link. Throws BAD_INPUT saying what is wrong.
 */
export function parseTopologyFile(text: string, source = 'topology file'): LabGraph {
  const bad = (why: string) => new MallaError('BAD_INPUT', `${source}: ${why}`)
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    throw bad(`not valid JSON (${(e as Error).message})`)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad('expected an object {"nodes": [...], "links": [[a, b], ...]}')
  const { nodes, links: raw } = json as { nodes?: unknown; links?: unknown }
  if (!Array.isArray(nodes) || nodes.length === 0) throw bad('"nodes" must be a non-empty array of router names')
  const index = new Map<string, number>()
  nodes.forEach((name, i) => {
    if (typeof name !== 'string' || !NODE_NAME.test(name)) {
      throw bad(`nodes[${i}] must be a name of 1 to 32 characters [A-Za-z0-9_-], starting with a letter or digit; got ${JSON.stringify(name)}`)
    }
    if (index.has(name)) throw bad(`node "${name}" is listed twice`)
    index.set(name, i)
  })
  if (!Array.isArray(raw)) throw bad('"links" must be an array of [a, b] pairs of node names')
  const seen = new Set<string>()
  const out: Array<[number, number]> = []
  raw.forEach((link, i) => {
    if (!Array.isArray(link) || link.length !== 2 || typeof link[0] !== 'string' || typeof link[1] !== 'string') {
      throw bad(`links[${i}] must be a pair of node names, got ${JSON.stringify(link)}`)
    }
    const [a, b] = link as [string, string]
    const ia = index.get(a)
    const ib = index.get(b)
    if (ia === undefined) throw bad(`links[${i}] names "${a}", which is not in "nodes"`)
    if (ib === undefined) throw bad(`links[${i}] names "${b}", which is not in "nodes"`)
    if (ia === ib) throw bad(`links[${i}] links "${a}" to itself`)
    const pair = ordered(ia, ib)
    const key = pair.join('-')
    if (seen.has(key)) throw bad(`links[${i}] repeats the link ${a}-${b}`)
    seen.add(key)
    out.push(pair)
  })
  const linked = new Set(out.flat())
  const alone = (nodes as string[]).filter((_, i) => !linked.has(i))
  if (alone.length > 0 && nodes.length > 1) throw bad(`every node needs a link; not linked: ${alone.join(', ')}`)
  return { names: nodes as string[], links: out }
}

/** Whether every router can reach every other. */
export function isConnected(graph: LabGraph): boolean {
  const n = graph.names.length
  if (n === 0) return true
  const adj = adjacency(graph)
  const seen = new Set([0])
  const stack = [0]
  while (stack.length > 0) {
    for (const j of adj[stack.pop() as number] ?? []) if (!seen.has(j)) (seen.add(j), stack.push(j))
  }
  return seen.size === n
}

/** Each router's neighbours, from the links. */
export function adjacency(graph: LabGraph): number[][] {
  const result: number[][] = graph.names.map(() => [])
  for (const [a, b] of graph.links) {
    result[a]?.push(b)
    result[b]?.push(a)
  }
  return result
}

/** Each router's neighbours for a named shape. */
export function neighbours(n: number, topology: Topology, seed?: number): number[][] {
  return adjacency(namedGraph(n, topology, seed))
}
