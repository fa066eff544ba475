import { MallaError } from '../../core/errors.js'
import { WorkBudget } from '../../sync/work-budget.js'
import { normalizeAddress } from '../../transport/address.js'

export interface SourceLimitOptions {
  /** Sustained bytes per second one address may send (bodies, frames, plus a fixed cost per request) or make the daemon answer. */
  readonly bytesPerSecond: number
  /** What one address may send at once before the sustained rate applies. */
  readonly burstBytes: number
  /** The same for neighbours (configured and discovered), which relay everyone's traffic. */
  readonly neighbourBytesPerSecond: number
  readonly neighbourBurstBytes: number
  /** Requests (and push frames) one address may have in progress at once. */
  readonly maxInFlight: number
  readonly neighbourMaxInFlight: number
  /** Body bytes in progress from all addresses but neighbours and this machine together. */
  readonly maxInFlightBytes: number
}

export const SOURCE_LIMITS: SourceLimitOptions = {
  bytesPerSecond: 256 * 1024,
  burstBytes: 4 * 1024 * 1024,
  neighbourBytesPerSecond: 16 * 1024 * 1024,
  neighbourBurstBytes: 64 * 1024 * 1024,
  maxInFlight: 8,
  neighbourMaxInFlight: 64,
  maxInFlightBytes: 64 * 1024 * 1024,
}

/** What each request costs beyond its body: a flood of tiny requests is work too. */
export const REQUEST_COST_BYTES = 512

/** One admitted request: charge its bytes as they arrive, and end it once answered. */
export interface Ticket {
  /** Takes `bytes` from the sender's budget; throws BUSY (taking nothing) when it has too few. */
  charge(bytes: number): void
  /**
   * Takes `bytes` even past zero: for an answer already made (a whole table, say), so that a small request
   * cannot have large answers sent at a rate beyond the sender's budget.
   */
  debit(bytes: number): void
  /**
   * Takes `bytes` from the budget for work done on the sender's behalf rather than bytes held (a signature
   * verified is charged as SIGNATURE_CHECK_BYTES); throws BUSY when it has too few.
   */
  work(bytes: number): void
  end(): void
}

/**
 * What one signature verification costs a sender, in bytes of its budget: about 2 ms of a router's CPU, so
 * another host's default 256 KiB/s pays for 64 a second (an eighth of a core at most), a neighbour's 16 MiB/s
 * for every record a mesh relays.
 */
export const SIGNATURE_CHECK_BYTES = 4096

/** Charges `ticket`'s sender for signatures verified on its behalf (a merge's `chargeChecks`). */
export function signatureCharge(ticket: Ticket): (checks: number) => void {
  return (checks) => ticket.work(checks * SIGNATURE_CHECK_BYTES)
}

const FREE: Ticket = { charge: () => {}, debit: () => {}, work: () => {}, end: () => {} }

/**
 * Rate and size limits per sending address, so that one sender cannot slow everyone else down or fill the
 * daemon's memory: a byte budget (a token bucket), a bound on requests in progress, and a bound on body bytes
 * in progress from all senders together. Neighbours get budgets of their own, larger, since they relay
 * every write of the mesh; this machine (loopback: the operator's CLI, hooks, a lab) is not limited.
 */
export class SourceLimits {
  private readonly budget: WorkBudget
  private readonly neighbourBudget: WorkBudget
  private readonly inFlight = new Map<string, number>()
  private inFlightBytes = 0

  constructor(
    private readonly options: SourceLimitOptions,
    /** Whether a (normalised) address is a neighbour's. */
    private readonly isNeighbour: (address: string) => boolean,
    now: () => number = Date.now,
  ) {
    this.budget = new WorkBudget(options.burstBytes, options.bytesPerSecond, now, 'bytes')
    this.neighbourBudget = new WorkBudget(options.neighbourBurstBytes, options.neighbourBytesPerSecond, now, 'bytes')
  }

  /**
   * Admits one request or frame from `address`, charging its fixed cost; throws BUSY when over a limit.
   * `local`: it comes from this machine (see `isLocal`), which is not limited.
   */
  admit(from: string, local: boolean): Ticket {
    if (local) return FREE
    // One sender, one budget, however its socket spells the address (a zone on link-local ones, a mapped IPv4).
    const address = normalizeAddress(from)
    const neighbour = this.isNeighbour(address)
    const max = neighbour ? this.options.neighbourMaxInFlight : this.options.maxInFlight
    const running = this.inFlight.get(address) ?? 0
    if (running >= max) throw new MallaError('BUSY', `${address} has ${running} requests in progress, the most allowed; retry later`)
    const budget = neighbour ? this.neighbourBudget : this.budget
    budget.charge(address, REQUEST_COST_BYTES)
    this.inFlight.set(address, running + 1)
    let held = 0
    let ended = false
    return {
      charge: (bytes) => {
        if (!neighbour && this.inFlightBytes + bytes > this.options.maxInFlightBytes) {
          throw new MallaError('BUSY', `the daemon holds ${this.inFlightBytes} bytes of requests in progress, the most allowed; retry later`)
        }
        budget.charge(address, bytes)
        if (!neighbour) {
          held += bytes
          this.inFlightBytes += bytes
        }
      },
      debit: (bytes) => budget.penalize(address, bytes),
      work: (bytes) => budget.charge(address, bytes),
      end: () => {
        if (ended) return
        ended = true
        this.inFlightBytes -= held
        const n = (this.inFlight.get(address) ?? 1) - 1
        if (n > 0) this.inFlight.set(address, n)
        else this.inFlight.delete(address)
      },
    }
  }

  /** Requests in progress and their body bytes (for tests and benchmarks). */
  stats(): { requests: number; bytes: number } {
    let requests = 0
    for (const n of this.inFlight.values()) requests += n
    return { requests, bytes: this.inFlightBytes }
  }
}

/**
 * Whether a connection comes from this machine: from a loopback address, or from the very address it
 * reached (the kernel gives a connection to one of this host's own addresses that address as its source).
 */
export function isLocal(socket: { readonly remoteAddress?: string; readonly localAddress?: string }): boolean {
  const remote = socket.remoteAddress
  if (remote === undefined) return false
  return isLoopback(remote) || (socket.localAddress !== undefined && normalizeAddress(remote) === normalizeAddress(socket.localAddress))
}

/** 127.0.0.0/8 and ::1 (also as `::ffff:127.x.y.z`). */
export function isLoopback(address: string): boolean {
  const a = normalizeAddress(address)
  return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a)
}
