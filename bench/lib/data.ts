import { seededRandom as prng } from '../../src/node/lab/topology.js'

/** Deterministic synthetic entries for benchmarks: ~200 bytes of JSON each, shaped like a host record a mesh shares. */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

/** The seeded generator the lab's random topologies use (mulberry32), so every run measures the same bytes. */
export { seededRandom as prng } from '../../src/node/lab/topology.js'
const hex = (rand: () => number, digits: number): string => {
  let s = ''
  for (let i = 0; i < digits; i++) s += Math.floor(rand() * 16).toString(16)
  return s
}

const BOARDS = ['tplink,archer-c7-v5', 'ubnt,nanostation-m-xw', 'librerouter,librerouter-v1', 'glinet,gl-ar300m-nor']

/** ~200 bytes of JSON (bat-hosts, nodes_and_links style); the same `i` and generator state give the same value. */
export function hostRecord(i: number, rand: () => number): JsonValue {
  return {
    hostname: `lm-node-${String(i).padStart(5, '0')}`,
    ipv4: `10.${13 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
    ipv6: `fd0d:fe46:8ce8::${hex(rand, 4)}:${hex(rand, 4)}`,
    mac: `02:${hex(rand, 2)}:${hex(rand, 2)}:${hex(rand, 2)}:${hex(rand, 2)}:${hex(rand, 2)}`,
    board: BOARDS[i % BOARDS.length] as string,
    firmware: `LibreMesh 2024.1 r${hex(rand, 7)}`,
    uptime: Math.floor(rand() * 1e7),
  }
}

/** `{prefix0: record, prefix1: record, ...}`: an insert body of `n` keys. */
export function hostRecords(n: number, seed: number, prefix = 'host-'): Record<string, JsonValue> {
  const rand = prng(seed)
  const out: Record<string, JsonValue> = {}
  for (let i = 0; i < n; i++) out[`${prefix}${i}`] = hostRecord(i, rand)
  return out
}
