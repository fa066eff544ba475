import { forceCenter, forceCollide, forceLink, forceManyBody, forceSimulation, type SimulationLinkDatum, type SimulationNodeDatum } from 'd3-force'
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { t } from '../i18n.js'
import { mergeGraphs, presenceSource, routerLinksSource, type MapEdge, type MapNode, type MapSource } from '../app/map-sources.js'
import { libremeshSource } from '../app/libremesh-map.js'
import type { Session } from '../app/session.js'
import { colourOf } from './PeopleView.js'

type Node = MapNode & SimulationNodeDatum
type Link = SimulationLinkDatum<Node> & { readonly edge: MapEdge }

const WIDTH = 800
const HEIGHT = 560
/** A mesh of hundreds of routers is drawn; beyond this the map shows a part of it rather than freezing. */
const MAX_NODES = 400

/** The live map: routers and their links, browsers behind them and their direct connections. */
export function MapView({ session }: { session: Session }) {
  const sources: MapSource[] = useMemo(() => [libremeshSource(session.room), routerLinksSource(session.room), presenceSource(session.room, session.people)], [session])
  const [frame, setFrame] = useState<{ nodes: readonly Node[]; links: readonly Link[] }>({ nodes: [], links: [] })
  const known = useRef(new Map<string, Node>())
  useEffect(() => {
    const sim = forceSimulation<Node, Link>()
      .force('charge', forceManyBody<Node>().strength(-180))
      .force('center', forceCenter(WIDTH / 2, HEIGHT / 2))
      .force('collide', forceCollide<Node>(22))
      .stop()
    let raf = 0
    sim.on('tick', () => {
      if (raf === 0) raf = requestAnimationFrame(() => ((raf = 0), setFrame({ nodes: sim.nodes().slice(), links: (sim.force('link') as ReturnType<typeof forceLink<Node, Link>> | undefined)?.links().slice() ?? [] })))
    })
    let stopped = false
    const rebuild = async () => {
      const graph = mergeGraphs(await Promise.all(sources.map((s) => s.read())))
      if (stopped) return
      // Nodes keep their place across updates: the map moves only where something changed.
      const nodes: Node[] = graph.nodes.slice(0, MAX_NODES).map((n) => Object.assign(known.current.get(n.id) ?? {}, n))
      // Routers with coordinates stand where they are; the others find their place around them.
      pinToCoordinates(nodes)
      known.current = new Map(nodes.map((n) => [n.id, n]))
      const links: Link[] = graph.edges.filter((e) => known.current.has(e.a) && known.current.has(e.b)).map((e) => ({ source: e.a, target: e.b, edge: e }))
      sim.nodes(nodes)
      sim.force(
        'link',
        forceLink<Node, Link>(links)
          .id((n) => n.id)
          .distance((l) => (l.edge.kind === 'mesh' ? 110 : l.edge.kind === 'behind' ? 55 : 80)),
      )
      sim.alpha(0.8).restart()
    }
    let pending: ReturnType<typeof setTimeout> | undefined
    const changed = () => (pending ??= setTimeout(() => ((pending = undefined), void rebuild()), 200))
    const offs = sources.map((s) => s.watch(changed))
    void rebuild()
    return () => {
      stopped = true
      offs.forEach((off) => off())
      clearTimeout(pending)
      cancelAnimationFrame(raf)
      sim.stop()
    }
  }, [sources])
  return (
    <section class="map">
      <h1>{t('map.title')}</h1>
      <svg class="mesh-map" viewBox={fit(frame.nodes)} role="img" aria-label={t('map.title')}>
        {frame.links.map((l) => {
          const s = l.source as Node
          const d = l.target as Node
          const q = l.edge.quality
          return (
            <line class={`edge ${l.edge.kind}`} x1={s.x} y1={s.y} x2={d.x} y2={d.y} key={`${l.edge.kind}|${s.id}|${d.id}`} data-a={s.id} data-b={d.id} data-quality={q === undefined ? undefined : q.toFixed(2)} style={q === undefined ? undefined : { strokeOpacity: 0.3 + 0.7 * q, strokeWidth: 2 + 3 * q }}>
              {q === undefined ? null : <title>{t('map.quality', { percent: Math.round(q * 100) })}</title>}
            </line>
          )
        })}
        {frame.nodes.map((n) =>
          n.kind === 'router' ? (
            <g class="node router" transform={`translate(${n.x ?? 0},${n.y ?? 0})`} key={n.id} data-node={n.id}>
              <rect x={-12} y={-12} width={24} height={24} rx={4} />
              <text y={28}>{n.label}</text>
            </g>
          ) : (
            <g class={n.me ? 'node browser me' : 'node browser'} transform={`translate(${n.x ?? 0},${n.y ?? 0})`} key={n.id} data-node={n.id}>
              <circle r={n.me ? 10 : 8} fill={colourOf(n.id)} />
              <text y={22}>{n.label}</text>
            </g>
          ),
        )}
      </svg>
      <p class="hint">{t('map.legend')}</p>
    </section>
  )
}

/**
 * Fixes routers that have coordinates at their place on a plain projection (longitude to x, latitude to y, north
 * up, x scaled by the cosine of the mean latitude), fitted into the map; routers without coordinates stay free.
 */
function pinToCoordinates(nodes: Node[]): void {
  const placed = nodes.filter((n) => n.at !== undefined)
  for (const n of nodes) if (n.at === undefined) n.fx = n.fy = undefined
  if (placed.length === 0) return
  const lats = placed.map((n) => (n.at as readonly [number, number])[0])
  const longs = placed.map((n) => (n.at as readonly [number, number])[1])
  const cos = Math.cos((((Math.min(...lats) + Math.max(...lats)) / 2) * Math.PI) / 180)
  const [x0, x1] = [Math.min(...longs) * cos, Math.max(...longs) * cos]
  const [y0, y1] = [Math.min(...lats), Math.max(...lats)]
  const pad = 80
  const scale = Math.min((WIDTH - 2 * pad) / Math.max(x1 - x0, 1e-9), (HEIGHT - 2 * pad) / Math.max(y1 - y0, 1e-9))
  for (const n of placed) {
    const [lat, long] = n.at as readonly [number, number]
    n.fx = x1 === x0 ? WIDTH / 2 : WIDTH / 2 + (long * cos - (x0 + x1) / 2) * scale
    n.fy = y1 === y0 ? HEIGHT / 2 : HEIGHT / 2 - (lat - (y0 + y1) / 2) * scale
  }
}

/** A view box around the nodes (with room for their labels), so a small mesh fills the map instead of a corner. */
function fit(nodes: readonly Node[]): string {
  if (nodes.length === 0) return `0 0 ${WIDTH} ${HEIGHT}`
  const xs = nodes.map((n) => n.x ?? WIDTH / 2)
  const ys = nodes.map((n) => n.y ?? HEIGHT / 2)
  const pad = 50
  let [x0, x1, y0, y1] = [Math.min(...xs) - pad, Math.max(...xs) + pad, Math.min(...ys) - pad, Math.max(...ys) + pad]
  // Never zoomed in beyond this: two nodes would otherwise look like a huge close-up.
  const [minW, minH] = [WIDTH * 0.75, HEIGHT * 0.75]
  if (x1 - x0 < minW) [x0, x1] = [(x0 + x1 - minW) / 2, (x0 + x1 + minW) / 2]
  if (y1 - y0 < minH) [y0, y1] = [(y0 + y1 - minH) / 2, (y0 + y1 + minH) / 2]
  return `${x0.toFixed(0)} ${y0.toFixed(0)} ${(x1 - x0).toFixed(0)} ${(y1 - y0).toFixed(0)}`
}
