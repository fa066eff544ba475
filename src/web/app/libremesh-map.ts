import type { Room } from 'malla/browser'
import type { MapEdge, MapGraph, MapNode, MapSource } from './map-sources.js'
import { UbusClient } from './ubus-client.js'

/**
 * LibreMesh's own picture of the mesh, as its nodes publish it over shared-state-async:
 * - `node_info`: hostname → {coordinates: {lat, long}, macs: [...], ...} (coordinates are strings, "FIXME" when unset);
 * - `wifi_links_info`, `bat_links_info`, `babel_links_info`: hostname → {links: {K: {src_mac, dst_mac, signal | tq, ...}}, src_loc},
 *   K being the two ends' addresses without separators, sorted and joined: both ends publish a link under the same K.
 * Read from a malla daemon's tables, or, on a router with no malla daemon, through the router's own `/ubus`
 * (rpcd's `shared-state-async get`, logged in as lime-app).
 */
export const LIBREMESH_MAP_TYPES = ['node_info', 'wifi_links_info', 'bat_links_info', 'babel_links_info'] as const
type MapType = (typeof LIBREMESH_MAP_TYPES)[number]
export type MapTables = Partial<Record<MapType, Readonly<Record<string, unknown>>>>

/** Routers drawn at most, and links per router read: a table from the network is anyone's to fill. */
const MAX_ROUTERS = 400
const MAX_LINKS_PER_ROUTER = 64

const routerId = (name: string) => `router:${name}`
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function coordinate(value: unknown, limit: number): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(value) ? Number(value) : NaN
  return Number.isFinite(n) && Math.abs(n) <= limit ? n : undefined
}

/** Latitude and longitude of `{lat, long}` when both are real numbers ("FIXME" is LibreMesh's unset). */
export function positionOf(value: unknown): readonly [number, number] | undefined {
  if (!isObject(value)) return undefined
  const lat = coordinate(value.lat, 90)
  const long = coordinate(value.long ?? value.lon, 180)
  return lat === undefined || long === undefined ? undefined : [lat, long]
}

const macKey = (mac: unknown) => (typeof mac === 'string' ? mac.toLowerCase().replace(/[^0-9a-f]/g, '') : '')

/** How good a link is, 0..1: Wi-Fi signal from -90 dBm (0) to -30 dBm (1), or batman-adv's TQ out of 255. */
function qualityOf(link: Record<string, unknown>): number | undefined {
  if (typeof link.signal === 'number' && Number.isFinite(link.signal)) return Math.min(1, Math.max(0, (link.signal + 90) / 60))
  if (typeof link.tq === 'number' && Number.isFinite(link.tq)) return Math.min(1, Math.max(0, link.tq / 255))
  return undefined
}

/** A router's links in either layout LibreMesh has used: `{links: {K: link}}` or an array of links. */
function linksOf(value: unknown): Array<[string, Record<string, unknown>]> {
  const raw = isObject(value) && isObject(value.links) ? value.links : Array.isArray(value) ? value : isObject(value) ? value : {}
  const out: Array<[string, Record<string, unknown>]> = []
  for (const [k, link] of Object.entries(raw)) {
    if (out.length >= MAX_LINKS_PER_ROUTER) break
    if (!isObject(link) || k === 'src_loc') continue
    const key = Array.isArray(raw) ? [macKey(link.src_mac), macKey(link.dst_mac)].sort().join('') : k
    out.push([key, link])
  }
  return out
}

/** The routers (with positions) and their links (with quality) that LibreMesh's tables describe. */
export function libremeshGraph(tables: MapTables): MapGraph {
  const nodes = new Map<string, MapNode>()
  const owners = new Map<string, string>()
  const add = (name: string, at?: readonly [number, number]) => {
    if (nodes.size >= MAX_ROUTERS && !nodes.has(name)) return
    const before = nodes.get(name)
    nodes.set(name, { id: routerId(name), kind: 'router', label: name, ...(at ?? before?.at ? { at: at ?? before?.at } : {}) })
  }
  for (const [name, info] of Object.entries(tables.node_info ?? {})) {
    if (!isObject(info)) continue
    add(name, positionOf(info.coordinates))
    if (Array.isArray(info.macs)) for (const mac of info.macs.slice(0, 32)) owners.set(macKey(mac), name)
  }
  const edges = new Map<string, MapEdge>()
  for (const type of ['wifi_links_info', 'bat_links_info', 'babel_links_info'] as const) {
    // Link key → the routers that publish it, with the best quality either end measured.
    const ends = new Map<string, { routers: Set<string>; quality?: number; dst: string }>()
    for (const [name, value] of Object.entries(tables[type] ?? {})) {
      add(name, isObject(value) ? positionOf(value.src_loc) : undefined)
      for (const [key, link] of linksOf(value)) {
        const e = ends.get(key) ?? { routers: new Set<string>(), dst: macKey(link.dst_mac) }
        e.routers.add(name)
        const q = qualityOf(link)
        if (q !== undefined) e.quality = Math.max(e.quality ?? 0, q)
        ends.set(key, e)
      }
    }
    for (const { routers, quality, dst } of ends.values()) {
      // A link only one end published: the other end is the router that owns its far address, if known.
      const other = owners.get(dst)
      if (routers.size === 1 && other !== undefined) routers.add(other)
      const list = [...routers].filter((r) => nodes.has(r)).sort()
      for (let i = 0; i + 1 < list.length; i++) {
        const [a, b] = [routerId(list[i] as string), routerId(list[i + 1] as string)]
        const id = `${a}|${b}`
        const before = edges.get(id)
        if (!before || (quality ?? -1) > (before.quality ?? -1)) edges.set(id, { a, b, kind: 'mesh', ...(quality !== undefined ? { quality } : {}) })
      }
    }
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()] }
}

/** Reads LibreMesh's map tables: from a malla daemon's API, or from a plain router's `/ubus`. */
export async function readMapTables(room: Room, ubus: UbusClient): Promise<MapTables> {
  const out: MapTables = {}
  await Promise.all(
    LIBREMESH_MAP_TYPES.map(async (type) => {
      try {
        out[type] = room.router.kind === 'malla' ? await fromDaemon(room.router.url, type) : await fromUbus(ubus, type)
      } catch {
        // A type this router does not have (no such package, no rights): the map goes on without it.
      }
    }),
  )
  return out
}

async function fromDaemon(routerUrl: string, type: string): Promise<Record<string, unknown>> {
  const res = await fetch(new URL(`malla/v1/tables/${type}`, routerUrl + '/').href)
  if (!res.ok) return {}
  const table = (await res.json()) as Record<string, { data?: unknown }>
  const out: Record<string, unknown> = {}
  for (const [key, entry] of Object.entries(table)) if (isObject(entry) && entry.data !== null && entry.data !== undefined) out[key] = entry.data
  return out
}

async function fromUbus(ubus: UbusClient, type: string): Promise<Record<string, unknown>> {
  // rpcd's shared-state-async script answers {"data": <shared-state-async get TYPE>, "error": N}.
  const answer = await ubus.call('shared-state-async', 'get', { data_type: type })
  return isObject(answer) && isObject(answer.data) ? answer.data : {}
}

/** How often a plain router's tables are read again: shared-state-async itself moves them every 30-50 s. */
const UBUS_EVERY_MS = 30_000

/** LibreMesh's routers and links as a map source (see libremeshGraph). */
export function libremeshSource(room: Room): MapSource {
  const ubus = new UbusClient(new URL('ubus', room.router.url + '/').href)
  return {
    async read() {
      return libremeshGraph(await readMapTables(room, ubus))
    },
    watch(changed) {
      if (room.router.kind === 'malla') {
        // The daemon's feed says when one of these tables changes; asking for them also makes it sync them.
        const feed = new EventSource(new URL(`malla/v1/events?types=${LIBREMESH_MAP_TYPES.join(',')}`, room.router.url + '/').href)
        feed.addEventListener('change', () => changed())
        return () => feed.close()
      }
      const timer = setInterval(changed, UBUS_EVERY_MS)
      return () => clearInterval(timer)
    },
  }
}
