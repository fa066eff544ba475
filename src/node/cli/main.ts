#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { createInterface } from 'node:readline'
import { join, resolve } from 'node:path'
import { isMallaError, MallaError, type ErrorCode } from '../../core/errors.js'
import { parseInsertValues, parseJsonText, parseKeyList, parseTtl, parseTypeName } from '../../core/schema.js'
import type { Flavour, Json } from '../../core/types.js'
import { apiAllowList, DEFAULTS, PeerDaemon, type PeerDaemonOptions } from '../daemon/peer-daemon.js'
import { LEAN_BELOW_BYTES, MEMORY_CHOICES, memoryMode, tuneHeapForDaemon, type MemoryChoice } from '../daemon/heap-tuning.js'
import { LIBREMESH_HTTP_TABLES, parseTableList } from '../daemon/wanted-tables.js'
import { LIBREMESH_ASYNC_TYPES, parseAsyncPeer, parseAsyncTypes } from '../async/async-types.js'
import { ASYNC_PORT } from '../../sync/async/async-frames.js'
import { SOURCE_LIMITS } from '../daemon/source-limits.js'
import { DISCOVERY_DEFAULTS } from '../discovery/neighbour-discovery.js'
import { namedGraph, parseTopologyFile, TOPOLOGIES, type LabGraph, type Topology } from '../lab/topology.js'
import { lineLogger, type LogLevel } from '../log.js'
import { keyCommand } from './key-command.js'
import { peerConfig } from '../config/uci-config.js'
import type { TableBackend } from './table-backend.js'

/**
 * Exit statuses, as LibreMesh's `shared-state` uses them where it has one (22 bad input, 165 lock failed),
 * else sysexits.h's (69 unavailable, 70 software error, 74 I/O error, 75 try again, 77 permission denied).
 */
const EXIT: Record<ErrorCode, number> = { BAD_INPUT: 22, TOO_LARGE: 22, LOCK_FAILED: 165, STORAGE: 74, PEER: 69, NOT_FOUND: 66, BUSY: 75, FORBIDDEN: 77, INTERNAL: 70 }

const DEFAULT_URL = `http://127.0.0.1:${DEFAULTS.port}`

function integer(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value)
    if (!/^[0-9]+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`)
    return n
  }
}

const seconds = (value: string): number => {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds')
  return Math.round(n * 1000)
}

/** An option in seconds, kept in milliseconds, whose default `--help` shows in the seconds the flag takes. */
function secondsOption(flags: string, description: string, defaultMs: number): Option {
  return new Option(flags, description).argParser(seconds).default(defaultMs, String(defaultMs / 1000))
}

/** Set by the single-file build (scripts/build-single.ts), which has no package.json beside it. */
declare const MALLA_VERSION: string | undefined

/** The package's version, from its package.json (two levels above dist/node/cli/ and src/node/cli/ alike). */
function packageVersion(): string {
  if (typeof MALLA_VERSION !== 'undefined') return MALLA_VERSION
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

const baseUrl = (value: string): string => {
  if (!/^http:\/\/(\[[^\]]+\]|[^/\s:]+)(:\d+)?\/?$/.test(value)) {
    throw new InvalidArgumentError('expected a base URL such as http://10.5.0.1:8080 or http://[fe80::1%25br-lan]')
  }
  return value.replace(/\/+$/, '')
}

const interfaceName = (value: string): string => {
  if (!/^[^\s/%:]{1,15}$/.test(value) || value === '.' || value === '..') throw new InvalidArgumentError('expected a network interface name, e.g. br-lan or bat0')
  return value
}

const cidr = (value: string): string => {
  try {
    apiAllowList([value])
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message)
  }
  return value
}

/** A node's name: written as `author` into every entry and sent in a header, so short and printable. */
const nodeName = (value: string): string => {
  if (value.length < 1 || value.length > 64 || /[\u0000-\u001f\u007f]/.test(value)) throw new InvalidArgumentError('expected 1-64 printable characters')
  return value
}

const collect = <T>(parse: (v: string) => T) => (value: string, previous: T[] = []): T[] => [...previous, parse(value)]

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return ''
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk)
  return Buffer.concat(chunks).toString('utf8')
}

/** Reads JSON from stdin; undefined when stdin is empty (LibreMesh's CLI then does nothing). */
async function stdinJson(): Promise<unknown> {
  const text = await readStdin()
  return text.trim() === '' ? undefined : parseJsonText(text, 'stdin')
}

interface TargetOptions {
  url?: string
  data?: string
  name?: string
  multiwriter?: boolean
}

async function backendOf(opts: TargetOptions): Promise<TableBackend> {
  if (opts.url !== undefined && opts.data !== undefined) throw new MallaError('BAD_INPUT', 'give --url or --data, not both')
  const { daemonBackend, dataDirBackend } = await import('./table-backend.js')
  return opts.data !== undefined ? dataDirBackend(resolve(opts.data), opts.name) : daemonBackend(opts.url ?? process.env.MALLA_URL ?? DEFAULT_URL)
}

const flavourOf = (opts: TargetOptions): Flavour => (opts.multiwriter ? 'multiwriter' : 'ttl')

function tableCommand(program: Command, name: string, summary: string): Command {
  return program
    .command(name)
    .summary(summary)
    .argument('<type>', 'data type (table) name, [A-Za-z0-9_-]+')
    .option('--url <url>', `a running daemon (default: $MALLA_URL or ${DEFAULT_URL})`)
    .option('--data <dir>', 'act on a data directory instead of a daemon (locks and writes it as the daemon does)')
    .option('--name <name>', 'author name for writes with --data (default: this host name)', nodeName)
}

function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n')
}

export function buildProgram(): Command {
  const program = new Command('malla')
    .description('Peer-to-peer for community mesh networks: LibreMesh-compatible shared-state, a router daemon, and a local lab.')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    // Usage errors (an unknown option, a missing argument, a bad value) come back to `main`, which exits 22.
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')

  program
    .command('peer')
    .summary('run the router daemon')
    .description(
      'Serve POST /cgi-bin/shared-state/<type> (and -multiwriter), keep tables in DIR/<type>.json, bleach periodically, ' +
        'sync with --peer neighbours periodically and after each change, and run hooks from HOOKS/<type>/.',
    )
    .option('--port <port>', 'TCP port', integer(0, 65535), DEFAULTS.port)
    .option('--host <address>', 'address to listen on', DEFAULTS.host)
    .option('--data <dir>', 'data directory', './malla-data')
    .option('--name <name>', 'this router\'s name, written as author (1-64 characters)', nodeName, hostname().slice(0, 64))
    .option('--peer <base-url>', 'a neighbour, e.g. http://10.5.0.2:8080 (repeatable)', collect(baseUrl), [] as string[])
    .option('--discover <iface>', 'find neighbours as LibreMesh does: ping ff02::1 on this interface and sync with whoever answers (repeatable; needs iputils-ping and --host ::)', collect(interfaceName), [] as string[])
    .option('--discover-port <port>', 'port the discovered neighbours\' daemons listen on (default: this daemon\'s --port)', integer(1, 65535))
    .option('--discover-interval <seconds>', `how often the interfaces are probed (default: ${DISCOVERY_DEFAULTS.intervalMs / 1000}); neighbours missing 3 probes in a row are dropped`, seconds)
    .option('--types <list>', 'tables synced with every neighbour even before this node holds them (a Lua router sends only the types its own cron jobs sync), comma-separated, multiwriter/<name> for multi-writer ones; tables read through the API or followed on the feed are added', LIBREMESH_HTTP_TABLES)
    .option('--async-port <port>', `serve LibreMesh's shared-state-async (C++, TCP; LibreMesh uses ${ASYNC_PORT}) on this port, for --async-types (default: off)`, integer(0, 65535))
    .option('--async-peer <host[:port]>', `a shared-state-async daemon to sync --async-types with, once per update interval and after each change (repeatable; port default: --async-port, else ${ASYNC_PORT}); with --discover, discovered neighbours are tried too`, collect((v: string) => v), [] as string[])
    .option('--async-types <list>', 'types spoken over shared-state-async, comma-separated, each optionally name:seconds (its update interval)', [...LIBREMESH_ASYNC_TYPES.keys()].join(','))
    .option('--stun-port <port>', 'UDP port of the STUN responder (RFC 5389 Binding, on --host), so pages get their routable address; 0: any free port', integer(0, 65535), DEFAULTS.stunPort)
    .option('--no-stun', 'no STUN responder')
    .option('--hooks <dir>', 'hooks directory (default: DATA/hooks)')
    .option('--web <dir>', 'serve this directory at / instead of malla\'s web app (an app of your own, such as a Trystero app importing /malla-trystero.js)')
    .addOption(secondsOption('--bleach-interval <seconds>', 'how often every table is bleached', DEFAULTS.bleachIntervalMs))
    .addOption(secondsOption('--sync-interval <seconds>', 'how often every table is synced with every peer', DEFAULTS.syncIntervalMs))
    .addOption(secondsOption('--timeout <seconds>', 'per request to a peer', DEFAULTS.requestTimeoutMs))
    .addOption(secondsOption('--hook-timeout <seconds>', 'a hook running longer is killed', DEFAULTS.hookTimeoutMs))
    .option('--max-body <bytes>', 'largest request body accepted (a LibreMesh router posts its whole table: raise this for tables larger than about 3,500 entries; malla neighbours never need it)', integer(1024, 1024 ** 3), DEFAULTS.maxBodyBytes)
    .option('--api-allow <cidr>', 'also take the operator\'s verbs of /malla/v1/ (insert, remove, bleach, sync) from this network, e.g. 10.13.0.0/16 (repeatable; default: only this machine)', collect(cidr), [] as string[])
    .option('--source-rate <bytes>', 'bytes per second one address may send, after its burst (this machine is not limited)', integer(1024, 1024 ** 3), SOURCE_LIMITS.bytesPerSecond)
    .option('--source-burst <bytes>', 'bytes one address may send at once before --source-rate applies', integer(1024, 1024 ** 3), SOURCE_LIMITS.burstBytes)
    .option('--neighbour-rate <bytes>', 'the same for neighbours (--peer and discovered), which relay everyone\'s writes', integer(1024, 1024 ** 3), SOURCE_LIMITS.neighbourBytesPerSecond)
    .option('--neighbour-burst <bytes>', 'the same for neighbours', integer(1024, 1024 ** 3), SOURCE_LIMITS.neighbourBurstBytes)
    .addOption(new Option('--mode <mode>', 'malla: push changes, reconcile by digests; libremesh: only full-table sync every --sync-interval, as LibreMesh does').choices(['malla', 'libremesh']).default('malla'))
    .addOption(
      new Option('--memory <mode>', `lean: less memory (no optimizing compiler, a small young heap), fast: more speed; auto: lean on a machine with less than ${LEAN_BELOW_BYTES / 1024 ** 3} GiB of RAM`)
        .choices(MEMORY_CHOICES)
        .default('auto'),
    )
    .addOption(new Option('--quiet', 'log warnings and errors only').conflicts('verbose'))
    .option('--verbose', 'log every request and sync')
    .option('--config <file>', 'take flags from the "config malla" section of this UCI file (OpenWrt\'s /etc/config/malla); flags given after it win')
    .action(async (o) => {
      // Before any table is loaded: the heap's growth is decided at each collection from then on.
      const memory = memoryMode(o.memory as MemoryChoice)
      const v8Flags = tuneHeapForDaemon(memory)
      const level: LogLevel = o.quiet ? 'warn' : o.verbose ? 'debug' : 'info'
      const discover = o.discover as string[]
      if (discover.length > 0 && o.host !== '::') {
        throw new MallaError('BAD_INPUT', `--discover needs --host :: (neighbours connect to this router's link-local address), not --host ${o.host}`)
      }
      if (discover.length === 0 && o.discoverPort !== undefined) throw new MallaError('BAD_INPUT', '--discover-port needs --discover')
      const log = lineLogger({ level, name: o.name })
      log.info('memory', { mode: memory, v8: v8Flags.join(' ') || undefined })
      const dataDir = resolve(o.data)
      const daemon = new PeerDaemon({
        port: o.port,
        host: o.host,
        dataDir,
        name: o.name,
        peers: o.peer,
        hooksDir: resolve(o.hooks ?? join(dataDir, 'hooks')),
        ...(o.web !== undefined ? { webDir: resolve(o.web as string) } : {}),
        bleachIntervalMs: o.bleachInterval,
        syncIntervalMs: o.syncInterval,
        syncDebounceMs: DEFAULTS.syncDebounceMs,
        requestTimeoutMs: o.timeout,
        hookTimeoutMs: o.hookTimeout,
        maxBodyBytes: o.maxBody,
        mode: o.mode,
        memory,
        log,
        discover: discover.length > 0 ? { interfaces: [...new Set(discover)], port: o.discoverPort, intervalMs: o.discoverInterval ?? DISCOVERY_DEFAULTS.intervalMs } : undefined,
        stun: o.stun ? { port: o.stunPort } : undefined,
        apiAllow: o.apiAllow,
        async: asyncOptions(o),
        tables: parseTableList(o.types),
        sourceLimits: { bytesPerSecond: o.sourceRate, burstBytes: o.sourceBurst, neighbourBytesPerSecond: o.neighbourRate, neighbourBurstBytes: o.neighbourBurst },
      })
      // A start that fails (a port in use, say) stops what it had started: nothing keeps the process alive.
      await daemon.start().catch(async (e: unknown) => {
        await daemon.stop().catch(() => {})
        throw e
      })
      await new Promise<void>((done) => {
        const stop = (signal: string) => {
          log.info('stopping', { signal })
          daemon.stop().then(done, done)
        }
        process.once('SIGINT', () => stop('SIGINT'))
        process.once('SIGTERM', () => stop('SIGTERM'))
      })
    })

  program
    .command('uci-args')
    .summary('print the `malla peer` flags a UCI config file gives, one per line (exit 3: the file says enabled 0)')
    .argument('<file>', 'a UCI file with a "config malla" section, e.g. /etc/config/malla')
    .action((file: string) => {
      const config = peerConfig(readConfigFile(file), file)
      if (config.args.length > 0) print(config.args.join('\n'))
      // The init script starts nothing for a disabled daemon: a status it can test, not a line to parse.
      if (!config.enabled) process.exitCode = 3
    })

  tableCommand(program, 'get', 'print a table as JSON')
    .option('--multiwriter', 'the multi-writer table of that name')
    .action(async (type: string, o: TargetOptions) => print(await (await backendOf(o)).get(flavourOf(o), parseTypeName(type))))

  tableCommand(program, 'insert', 'write {key: data, ...} from stdin')
    .option('--ttl <n>', 'bleachTTL of the new entries (default 30)', (v) => parseTtl(v))
    .option('--multiwriter', 'the multi-writer table of that name')
    .action(async (type: string, o: TargetOptions & { ttl?: number }) => {
      const t = parseTypeName(type)
      const input = await stdinJson()
      if (input === undefined) return
      await (await backendOf(o)).insert(flavourOf(o), t, parseInsertValues(input, 'stdin'), o.ttl)
    })

  tableCommand(program, 'remove', 'remove ["key", ...] from stdin (written as data: null, faded by bleach)')
    .option('--ttl <n>', 'bleachTTL of the removal records (default 30)', (v) => parseTtl(v))
    .action(async (type: string, o: TargetOptions & { ttl?: number }) => {
      const t = parseTypeName(type)
      const input = await stdinJson()
      if (input === undefined) return
      await (await backendOf(o)).remove(t, parseKeyList(input, 'stdin'), o.ttl)
    })

  tableCommand(program, 'bleach', 'decrement every TTL, drop entries below 2').action(async (type: string, o: TargetOptions) => {
    await (await backendOf(o)).bleach(parseTypeName(type))
  })

  tableCommand(program, 'sync', 'sync a table with endpoint URLs (with --url and no URL: with the daemon\'s peers)')
    .argument('[urls...]', 'full endpoint URLs, e.g. http://10.5.0.2/cgi-bin/shared-state/TYPE')
    .option('--multiwriter', 'the multi-writer table of that name')
    .addOption(secondsOption('--timeout <seconds>', 'per request', DEFAULTS.requestTimeoutMs))
    .action(async (type: string, urls: string[], o: TargetOptions & { timeout: number }) => {
      for (const u of urls) if (!/^https?:\/\//.test(u)) throw new MallaError('BAD_INPUT', `not an endpoint URL: ${u}`)
      const outcomes = await (await backendOf(o)).sync(flavourOf(o), parseTypeName(type), urls, o.timeout)
      for (const r of outcomes) if (r.skipped) process.stderr.write(`malla: sync ${r.url}: ${r.skipped}\n`)
      if (outcomes.length > 0 && outcomes.every((r) => r.skipped)) process.exitCode = EXIT.PEER
    })

  tableCommand(program, 'reqsync', 'merge a remote table from stdin and print the merged table (what the endpoint does)')
    .option('--multiwriter', 'the multi-writer table of that name')
    .action(async (type: string, o: TargetOptions) => {
      const t = parseTypeName(type)
      print(await (await backendOf(o)).reqsync(flavourOf(o), t, (await stdinJson()) ?? {}))
    })

  tableCommand(program, 'dump', 'print every entry on its own line: {"key", "data", "author", "bleachTTL", ...}')
    .option('--multiwriter', 'the multi-writer table of that name')
    .action(async (type: string, o: TargetOptions) => {
      const table = JSON.parse(await (await backendOf(o)).get(flavourOf(o), parseTypeName(type))) as Record<string, Record<string, Json>>
      const lines = Object.keys(table)
        .sort()
        .map((key) => JSON.stringify({ key, ...table[key] }))
      if (lines.length > 0) print(lines.join('\n'))
    })

  program
    .command('watch')
    .summary('print the changes of some tables as JSON lines, live, resuming after reconnects')
    .argument('[types...]', 'data types to follow (all when none)')
    .option('--url <url>', `a running daemon (default: $MALLA_URL or ${DEFAULT_URL})`)
    .option('--since <cursor>', 'start after this cursor (the "cursor" of a line printed earlier)')
    .action(async (types: string[], o: { url?: string; since?: string }) => {
      for (const t of types) parseTypeName(t)
      const { followChanges } = await import('../../transport/change-feed-client.js')
      const controller = new AbortController()
      process.once('SIGINT', () => controller.abort())
      process.once('SIGTERM', () => controller.abort())
      await followChanges(o.url ?? process.env.MALLA_URL ?? DEFAULT_URL, (e) => print(JSON.stringify(e)), {
        types,
        since: o.since,
        signal: controller.signal,
        onRetry: (error, delayMs) => process.stderr.write(`malla: watch: ${error.message}; retrying in ${delayMs} ms\n`),
      })
    })

  program
    .command('peers')
    .summary('list a daemon\'s neighbours, one JSON line each: {"base", "malla", "lastOkAt", "lastError"}')
    .option('--url <url>', `a running daemon (default: $MALLA_URL or ${DEFAULT_URL})`)
    .action(async (o: { url?: string }) => {
      const { DaemonApiClient } = await import('../../transport/daemon-api-client.js')
      const info = JSON.parse(await new DaemonApiClient(o.url ?? process.env.MALLA_URL ?? DEFAULT_URL).info()) as { neighbours: unknown[] }
      if (info.neighbours.length > 0) print(info.neighbours.map((n) => JSON.stringify(n)).join('\n'))
    })

  program
    .command('build-static')
    .summary('write the web app as plain files, for a LibreMesh router that cannot run Node')
    .description(
      'Copy the built web app (the one every daemon serves at /) into DIR. Put DIR in a LibreMesh router\'s web root\n' +
        '(e.g. scp -r DIR root@thisnode.info:/www/malla) and open http://thisnode.info/malla/: the app joins its room through\n' +
        'the router\'s own shared-state CGI, with no malla daemon anywhere.',
    )
    .argument('<dir>', 'where to write the files (created if missing)')
    .option('--force', 'write into a non-empty DIR, replacing the app\'s files there')
    .action(async (dir: string, o: { force?: boolean }) => {
      const { buildStatic } = await import('./build-static.js')
      const files = await buildStatic(resolve(dir), { force: Boolean(o.force) })
      for (const f of files) print(`${f.path} ${f.bytes} bytes (${f.gzip} gzip)`)
      process.stderr.write(`malla: build-static: ${files.length} files in ${resolve(dir)}; copy them into a router's web root and open that folder's URL\n`)
    })

  keyCommand(program, print)

  program
    .command('join')
    .summary('join a room of browsers and Node peers through a router; JSON lines out, stdin lines sent to every peer')
    .description(
      'Meet the room\'s peers through the router at --url (a malla daemon, or a plain LibreMesh router), over WebRTC.\n' +
        'Prints one JSON line per event: {"event":"ready","id",...}, {"event":"peer","id"}, {"event":"closed","id","reason"},\n' +
        '{"event":"message","from","kind","value"}. Each line read on stdin is sent, as text, to every connected peer.\n' +
        'At the end of stdin, SIGINT or SIGTERM it withdraws its offers from the router and exits.',
    )
    .argument('<room>', 'the room (an app name: 1-64 of letters, digits and _.:@+-)')
    .option('--url <url>', `the router (default: $MALLA_URL or ${DEFAULT_URL})`)
    .option('--target <n>', 'connections to look for (default 3)', integer(0, 64))
    .option('--max <n>', 'connections to accept at most (default 6)', integer(1, 64))
    .option('--key [file]', 'sign signaling with this OpenPGP key (`malla key`; default file: $MALLA_KEY or ~/.config/malla/key.asc); only signed peers are answered')
    .option('--accept-unsigned', 'with --key: also connect to peers that sign nothing')
    .action(async (room: string, o: { url?: string; target?: number; max?: number; key?: string | true; acceptUnsigned?: boolean }) => {
      const { joinRoom } = await import('../index.js')
      const { keptIdentity } = await import('./key-command.js')
      if (o.acceptUnsigned && o.key === undefined) throw new MallaError('BAD_INPUT', '--accept-unsigned goes with --key: without a key every peer is answered anyway')
      const identity = o.key === undefined ? undefined : await keptIdentity(o.key === true ? undefined : o.key)
      const joined = await joinRoom(room, {
        routerUrl: o.url ?? process.env.MALLA_URL ?? DEFAULT_URL,
        ...(o.target !== undefined ? { target: o.target } : {}),
        ...(o.max !== undefined ? { max: o.max } : {}),
        ...(identity ? { identity, acceptUnsigned: Boolean(o.acceptUnsigned) } : {}),
      })
      const say = (line: object) => print(JSON.stringify(line))
      say({ event: 'ready', id: joined.id, router: joined.router.kind, name: joined.router.name ?? null, ...(identity ? { fingerprint: identity.fingerprint } : {}) })
      joined.mesh.on('peer', (peer) => {
        say({ event: 'peer', id: peer.id, ...(peer.signer ? { fingerprint: peer.signer } : {}) })
        peer.on('message', (value, kind) => say({ event: 'message', from: peer.id, kind, value: value instanceof Uint8Array ? Buffer.from(value).toString('base64') : value }))
      })
      joined.mesh.on('peer-closed', (peer, reason) => say({ event: 'closed', id: peer.id, reason }))
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
        const input = createInterface({ input: process.stdin })
        input.on('line', (line) => {
          for (const peer of joined.mesh.peers()) void peer.send(line).catch((e: Error) => process.stderr.write(`malla: join: ${e.message}\n`))
        })
        input.on('close', resolve)
      })
      await joined.leave()
      process.exit(0)
    })

  program
    .command('lab')
    .summary('run a local mesh of daemons, on 127.0.0.1 or (--netns) each in its own network namespace')
    .description(
      'Start N daemons wired as the topology says, print one line per router, and stop them all on SIGINT/SIGTERM.\n' +
        'By default they run on 127.0.0.1 (ports P, P+1, ...), each given its neighbours with --peer.\n' +
        'With --netns (root), each router runs in its own network namespace on port P, linked to its neighbours by veth ' +
        'pairs, and finds them by pinging ff02::1 (--discover), as LibreMesh routers do; namespaces and veths are removed at exit. ' +
        '--clean removes what an earlier netns lab left behind.',
    )
    .option('--routers <n>', 'number of routers', integer(1, 200), 3)
    .addOption(new Option('--topology <shape>', 'how routers are linked (grid: near-square; random: connected, see --seed)').choices(TOPOLOGIES).default('chain'))
    .option('--seed <n>', 'seed of --topology random (default: a new one, printed)', integer(0, 2 ** 32 - 1))
    .addOption(
      new Option('--topology-file <file>', 'routers and links from JSON {"nodes": ["a", ...], "links": [["a", "b"], ...]}').conflicts(['routers', 'topology', 'seed']),
    )
    .option('--base-port <port>', 'port of the first router (with --netns: of every router)', integer(1, 65535), DEFAULTS.port)
    .option('--netns', 'each router in its own network namespace, discovering its neighbours on veth links (root only)')
    .addOption(new Option('--clean', 'remove namespaces, veths and processes left by earlier netns labs, print them, and exit').conflicts(['netns']))
    .option('--discover-interval <seconds>', 'with --netns: passed to every router', seconds)
    .option('--data <dir>', 'keep the routers\' data here (default: a temporary directory, removed at exit)')
    .option('--bleach-interval <seconds>', 'passed to every router', seconds)
    .option('--sync-interval <seconds>', 'passed to every router', seconds)
    .option('--verbose', 'show every router\'s debug log')
    .action(async (o) => {
      const { cleanLabs, runNetnsLab } = await import('../lab/netns-lab.js')
      const { runLab } = await import('../lab/lab.js')
      if (o.clean) {
        await cleanLabs()
        return
      }
      if (o.discoverInterval !== undefined && !o.netns) throw new MallaError('BAD_INPUT', '--discover-interval needs --netns')
      let graph: LabGraph | undefined
      let seed = o.seed as number | undefined
      if (o.topologyFile !== undefined) {
        const file = resolve(o.topologyFile as string)
        let text: string
        try {
          text = readFileSync(file, 'utf8')
        } catch (e) {
          throw new MallaError('BAD_INPUT', `cannot read the topology file: ${(e as Error).message}`)
        }
        graph = parseTopologyFile(text, file)
      } else if (o.topology === 'random') {
        seed ??= Math.floor(Math.random() * 2 ** 32)
        process.stderr.write(`lab: random topology, seed ${seed} (--seed ${seed} repeats it)\n`)
      }
      if (o.netns) {
        await runNetnsLab({
          graph: graph ?? namedGraph(o.routers, o.topology as Topology, seed),
          port: o.basePort,
          dataDir: o.data === undefined ? undefined : resolve(o.data),
          bleachIntervalMs: o.bleachInterval,
          syncIntervalMs: o.syncInterval,
          discoverIntervalMs: o.discoverInterval,
          verbose: Boolean(o.verbose),
        })
        return
      }
      await runLab({
        routers: o.routers,
        topology: o.topology as Topology,
        seed,
        graph,
        basePort: o.basePort,
        dataDir: o.data === undefined ? undefined : resolve(o.data),
        bleachIntervalMs: o.bleachInterval,
        syncIntervalMs: o.syncInterval,
        verbose: Boolean(o.verbose),
      })
    })

  return program
}

function readConfigFile(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (e) {
    throw new MallaError('BAD_INPUT', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e })
  }
}

/**
 * `malla peer --config FILE ...` as `malla peer <the file's flags> ...`: the file's flags go first, so a flag
 * given on the command line wins over the file (and adds to its lists).
 */
export function expandPeerConfig(argv: readonly string[]): string[] {
  // argv is [node, script, command, ...]: only the peer command takes --config.
  const at = 2
  if (argv[at] !== 'peer') return [...argv]
  const rest = argv.slice(at + 1)
  const i = rest.findIndex((a) => a === '--config' || a.startsWith('--config='))
  if (i < 0) return [...argv]
  const inline = rest[i]?.startsWith('--config=')
  const file = inline ? (rest[i] as string).slice('--config='.length) : rest[i + 1]
  if (file === undefined || file === '') throw new MallaError('BAD_INPUT', '--config needs a file')
  const config = peerConfig(readConfigFile(file), file)
  rest.splice(i, inline ? 1 : 2)
  return [...argv.slice(0, at + 1), ...config.args, ...rest]
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(expandPeerConfig(argv))
  } catch (e) {
    // Commander has printed its usage error (or the help, or the version) already; nothing was started, so the
    // process ends once stdout is written.
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? 0 : EXIT.BAD_INPUT
      return
    }
    const code: ErrorCode = isMallaError(e) ? e.code : 'INTERNAL'
    // A fatal error ends the process, whatever a failed start left open (a timer, a socket): the message first.
    process.stderr.write(`malla: ${(e as Error).message}\n`, () => process.exit(EXIT[code]))
  }
}

await main(process.argv)

/** shared-state-async settings from `malla peer`'s flags; undefined when neither --async-port nor --async-peer is given. */
function asyncOptions(o: { asyncPort?: number; asyncPeer: string[]; asyncTypes: string; discover: string[] }): PeerDaemonOptions['async'] {
  // Checked even when unused: a bad value is a usage error, whether or not the flag would matter.
  const types = parseAsyncTypes(o.asyncTypes)
  const peerPort = o.asyncPort !== undefined && o.asyncPort !== 0 ? o.asyncPort : ASYNC_PORT
  const peers = o.asyncPeer.map((p) => parseAsyncPeer(p, peerPort))
  if (o.asyncPort === undefined && peers.length === 0) return undefined
  return { port: o.asyncPort, peers, types, discoverPort: peerPort }
}
