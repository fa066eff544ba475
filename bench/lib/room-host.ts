/**
 * Many Node peers of one room in one process, for bench/room.ts (one such process per router's namespace, so
 * that a room of 100 peers costs 10 Node processes, not 100): `room-host.ts ROUTER_URL ROOM COUNT`.
 * Each peer is an ordinary `joinRoom` with its defaults (target 3, max 6) and the room table `chat`.
 * Prints JSON lines: `{"event":"ready","ids":[...]}` once every peer has joined; `{"event":"entry","i","key","at","via"}`
 * when peer `i` first holds a key of `chat` (`at`: wall-clock ms); `{"event":"wrote","i","key","at"}`;
 * `{"event":"stats","peers":[{"id","connected","linked","bytes","chatBytes","writes"}]}`. Reads lines: `stats`,
 * `write I KEY` (peer I writes KEY to `chat`), `leave` (every peer leaves, then the process exits).
 */
import { createInterface } from 'node:readline'
import { joinRoom } from '../../src/node/index.js'
import type { Room } from '../../src/signaling/join.js'

const [routerUrl, room, countArg] = process.argv.slice(2)
const count = Number(countArg)
if (!routerUrl || !room || !Number.isInteger(count) || count < 1) throw new Error('usage: room-host.ts ROUTER_URL ROOM COUNT')
const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`)
// MALLA_DEBUG=1: every peer's log on stderr, one JSON line each.
const debug = process.env.MALLA_DEBUG ? (peer: number, level: string) => (m: string, f?: object) => process.stderr.write(`${JSON.stringify({ peer, level, m, ...f })}\n`) : undefined
const at = () => performance.timeOrigin + performance.now()

interface Hosted {
  readonly room: Room
  /** Entries this peer wrote itself (offers, renewals, answers, marks, presence, chat): each goes to its router. */
  writes: number
}

async function host(i: number): Promise<Hosted> {
  const log = debug ? { debug: debug(i, 'debug'), info: debug(i, 'info'), warn: debug(i, 'warn'), error: debug(i, 'error') } : undefined
  const joined = await joinRoom(room as string, { routerUrl: routerUrl as string, tables: ['chat'], ...(log ? { log } : {}) })
  const chat = joined.tables.get('chat')
  const hosted: Hosted = { room: joined, writes: 0 }
  joined.replica.on('applied', (e) => {
    hosted.writes += e.keys.filter((k) => e.sources?.get(k) === undefined && (e.table.get(k) as { author?: string } | undefined)?.author === joined.id).length
  })
  const seen = new Set<string>()
  joined.replica.on('change', (e) => {
    if (e.type !== chat) return
    for (const key of e.keys) {
      if (seen.has(key)) continue
      seen.add(key)
      say({ event: 'entry', i, key, at: at(), via: e.sources?.get(key) ?? 'router' })
    }
  })
  return hosted
}

// Joins spread over a second or so, as people arrive, rather than all in one tick.
const peers = await Promise.all(Array.from({ length: count }, (_, i) => new Promise<Hosted>((resolve, reject) => setTimeout(() => host(i).then(resolve, reject), i * 150))))
say({ event: 'ready', ids: peers.map((p) => p.room.id) })

createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, ...args] = line.trim().split(' ')
  if (cmd === 'stats') {
    say({
      event: 'stats',
      peers: peers.map((p) => {
        const t = p.room.overlay.traffic()
        const c = p.room.overlay.tableTraffic({ flavour: 'ttl', type: p.room.tables.get('chat') as NonNullable<ReturnType<Room['tables']['get']>> })
        return { id: p.room.id, connected: p.room.mesh.stats().connected, linked: p.room.overlay.linked().length, bytes: t.bytesSent + t.bytesReceived, chatBytes: c.bytesSent + c.bytesReceived, writes: p.writes }
      }),
    })
  } else if (cmd === 'write') {
    const i = Number(args[0])
    const key = args[1] as string
    const p = peers[i]
    if (!p) return say({ event: 'error', error: `no peer ${i}` })
    const started = at()
    void p.room.replica.insert(p.room.tables.get('chat') as NonNullable<ReturnType<Room['tables']['get']>>, [[key, 'x'.repeat(100)]]).then(() => say({ event: 'wrote', i, key, at: started }))
  } else if (cmd === 'leave') {
    void Promise.allSettled(peers.map((p) => p.room.leave())).then(() => process.exit(0))
  }
})
process.on('SIGTERM', () => void Promise.allSettled(peers.map((p) => p.room.leave())).then(() => process.exit(0)))
