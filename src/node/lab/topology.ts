export const TOPOLOGIES = ['chain', 'ring', 'full'] as const
export type Topology = (typeof TOPOLOGIES)[number]

/** Undirected links between routers 0..n-1 for a named shape. */
export function links(n: number, topology: Topology): Array<[number, number]> {
  const out: Array<[number, number]> = []
  if (topology === 'full') {
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) out.push([i, j])
    return out
  }
  for (let i = 0; i + 1 < n; i++) out.push([i, i + 1])
  if (topology === 'ring' && n > 2) out.push([n - 1, 0])
  return out
}

/** Each router's neighbours, from the links. */
export function neighbours(n: number, topology: Topology): number[][] {
  const result: number[][] = Array.from({ length: n }, () => [])
  for (const [a, b] of links(n, topology)) {
    result[a]?.push(b)
    result[b]?.push(a)
  }
  return result
}
