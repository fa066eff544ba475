import { readFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'

/** The kernel's ephemeral port range (where `--port 0` and outgoing connections take their ports). */
async function ephemeralRange(): Promise<[number, number]> {
  try {
    const [lo, hi] = (await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).map(Number)
    if (lo !== undefined && hi !== undefined && Number.isInteger(lo) && Number.isInteger(hi)) return [lo, hi]
  } catch {
    // not Linux: assume the usual range
  }
  return [32768, 60999]
}

function tryListen(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(undefined))
    s.listen(port, '127.0.0.1', () => resolve(s))
  })
}

/**
 * `count` distinct loopback ports that nothing listens on now, for daemons that must know each other's
 * addresses before they start. They are picked below the ephemeral range, from a random offset, so that
 * neither the daemons' own outgoing connections nor other programs using port 0 take them in between.
 */
export async function freePorts(count: number): Promise<number[]> {
  const [lo] = await ephemeralRange()
  const floor = 10_000
  const span = Math.max(1, lo - floor - 4 * count - 100)
  let port = floor + Math.floor(Math.random() * span)
  const held: Server[] = []
  const ports: number[] = []
  try {
    for (let tries = 0; ports.length < count && tries < 20 * count + 100; tries++, port++) {
      if (port >= lo) port = floor
      const s = await tryListen(port)
      if (s) {
        held.push(s)
        ports.push(port)
      }
    }
  } finally {
    await Promise.all(held.map((s) => new Promise((resolve) => s.close(resolve))))
  }
  if (ports.length < count) throw new Error(`found only ${ports.length} of ${count} free ports`)
  return ports
}
