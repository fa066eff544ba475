import { LINKS_TYPE, parseLinks, type Room } from 'malla/browser'
import type { People } from './people.js'

/**
 * The map is drawn from sources, each a graph of what it knows; they are merged by node id: LibreMesh's
 * `node_info` and `*_links_info` (coordinates, signal; libremesh-map.ts), the routers' links (`malla-links`)
 * and the room's presence.
 */
export interface MapNode {
  readonly id: string
  readonly kind: 'router' | 'browser'
  readonly label: string
  readonly me?: boolean
  /** A known position (latitude, longitude), when a source has one. */
  readonly at?: readonly [number, number]
}

export interface MapEdge {
  readonly a: string
  readonly b: string
  /** `mesh`: routers linked; `behind`: a browser and its router; `direct`: two browsers connected. */
  readonly kind: 'mesh' | 'behind' | 'direct'
  /** 0..1 when a source measures the link. */
  readonly quality?: number
}

export interface MapGraph {
  readonly nodes: readonly MapNode[]
  readonly edges: readonly MapEdge[]
}

export interface MapSource {
  read(): Promise<MapGraph>
  /** Calls back when the source's graph may have changed; returns the unsubscribe. */
  watch(changed: () => void): () => void
}

const routerId = (name: string) => `router:${name}`

/** The routers and their links, as every malla router publishes them in `malla-links`. */
export function routerLinksSource(room: Room): MapSource {
  return {
    async read() {
      const table = (await room.replica.read({ flavour: 'ttl', type: LINKS_TYPE })).table as ReadonlyMap<string, { data?: unknown }>
      const links = parseLinks(table)
      const nodes = new Map<string, MapNode>()
      const edges: MapEdge[] = []
      for (const [router, neighbours] of links) {
        nodes.set(router, { id: routerId(router), kind: 'router', label: router })
        for (const n of neighbours) {
          if (!nodes.has(n)) nodes.set(n, { id: routerId(n), kind: 'router', label: n })
          if (router < n) edges.push({ a: routerId(router), b: routerId(n), kind: 'mesh' })
        }
      }
      return { nodes: [...nodes.values()], edges }
    },
    watch(changed) {
      return room.replica.on('change', (e) => {
        if (e.type === LINKS_TYPE) changed()
      })
    },
  }
}

/** The browsers present, behind their routers, and the direct connections both ends list. */
export function presenceSource(room: Room, people: People): MapSource {
  return {
    async read() {
      const present = people.list.value.filter((p) => p.present)
      const ids = new Set(present.map((p) => p.id))
      const nodes: MapNode[] = []
      const edges: MapEdge[] = []
      for (const p of present) {
        nodes.push({ id: p.id, kind: 'browser', label: p.name, me: p.me })
        if (p.router !== undefined) {
          nodes.push({ id: routerId(p.router), kind: 'router', label: p.router })
          edges.push({ a: p.id, b: routerId(p.router), kind: 'behind' })
        }
        for (const other of p.links) if (ids.has(other) && p.id < other) edges.push({ a: p.id, b: other, kind: 'direct' })
      }
      return { nodes, edges }
    },
    watch(changed) {
      return people.list.subscribe(() => changed())
    },
  }
}

/** One graph from many: a node keeps the first label seen and any position a source knows. */
export function mergeGraphs(graphs: readonly MapGraph[]): MapGraph {
  const nodes = new Map<string, MapNode>()
  const edges = new Map<string, MapEdge>()
  for (const g of graphs) {
    for (const n of g.nodes) {
      const before = nodes.get(n.id)
      nodes.set(n.id, before ? { ...before, ...(n.at && !before.at ? { at: n.at } : {}), ...(n.me ? { me: true } : {}) } : n)
    }
    for (const e of g.edges) {
      const [a, b] = e.a < e.b ? [e.a, e.b] : [e.b, e.a]
      const id = `${e.kind}|${a}|${b}`
      const before = edges.get(id)
      // A measured link keeps its measure, whichever source named it first.
      if (!before || (before.quality === undefined && e.quality !== undefined)) edges.set(id, { ...e, a, b })
    }
  }
  // An edge to a node no source described (a router gone from every list) is dropped, not drawn to nowhere.
  return { nodes: [...nodes.values()], edges: [...edges.values()].filter((e) => nodes.has(e.a) && nodes.has(e.b)) }
}
