import { fromBase64Url, toBase64Url } from '../core/base64url.js'
import { badInput } from '../core/errors.js'

/**
 * The few facts a data-channel-only session description carries, so an offer or answer fits in a small
 * shared-state entry (no trickle: candidates are gathered first). Everything else in the SDP is the same
 * for every such session and is rebuilt by `toSdp`.
 */
export interface SessionFacts {
  readonly ufrag: string
  readonly pwd: string
  /** SHA-256 DTLS certificate fingerprint, as 64 hex digits (no colons). */
  readonly fingerprint: string
  /** DTLS role: an offer says `actpass`; an answer `active` (or `passive`). */
  readonly setup: 'actpass' | 'active' | 'passive'
  readonly candidates: readonly Candidate[]
  readonly maxMessageSize?: number
}

/** One ICE candidate: enough to rebuild its `a=candidate` line. */
export interface Candidate {
  readonly foundation: string
  readonly component: number
  readonly protocol: 'udp' | 'tcp'
  readonly priority: number
  /** An IP address, or an mDNS name (`<uuid>.local`) as browsers use to hide host addresses. */
  readonly address: string
  readonly port: number
  readonly type: 'host' | 'srflx' | 'prflx' | 'relay'
  readonly tcpType?: string
}

const CANDIDATE = /^(?:a=)?candidate:(\S+) (\d+) (udp|tcp) (\d+) (\S+) (\d+) typ (host|srflx|prflx|relay)(?:.*? tcptype (\S+))?/i

export function parseCandidate(line: string): Candidate | undefined {
  const m = CANDIDATE.exec(line.trim())
  if (!m) return undefined
  return {
    foundation: m[1] as string,
    component: Number(m[2]),
    protocol: (m[3] as string).toLowerCase() as 'udp' | 'tcp',
    priority: Number(m[4]),
    address: m[5] as string,
    port: Number(m[6]),
    type: m[7] as Candidate['type'],
    ...(m[8] ? { tcpType: m[8] } : {}),
  }
}

export function candidateLine(c: Candidate): string {
  return `candidate:${c.foundation} ${c.component} ${c.protocol} ${c.priority} ${c.address} ${c.port} typ ${c.type}${c.tcpType ? ` tcptype ${c.tcpType}` : ''}`
}

/** Reads the facts out of an SDP offer or answer of a session with one data channel. */
export function sessionFacts(sdp: string): SessionFacts {
  const lines = sdp.split(/\r?\n/)
  const value = (prefix: string) => lines.find((l) => l.startsWith(prefix))?.slice(prefix.length).trim()
  const ufrag = value('a=ice-ufrag:')
  const pwd = value('a=ice-pwd:')
  const fp = value('a=fingerprint:')
  const setup = value('a=setup:')
  if (!ufrag || !pwd || !fp || !setup) throw badInput('session description lacks ice-ufrag, ice-pwd, fingerprint or setup')
  const [algorithm, hex] = fp.split(/\s+/)
  if (algorithm?.toLowerCase() !== 'sha-256' || !hex) throw badInput(`unsupported fingerprint ${fp}`)
  if (setup !== 'actpass' && setup !== 'active' && setup !== 'passive') throw badInput(`unsupported DTLS setup ${setup}`)
  const maxMessageSize = value('a=max-message-size:')
  const candidates: Candidate[] = []
  for (const l of lines) {
    if (!l.startsWith('a=candidate:')) continue
    const c = parseCandidate(l)
    if (c) candidates.push(c)
  }
  return {
    ufrag,
    pwd,
    fingerprint: hex.replace(/:/g, '').toLowerCase(),
    setup,
    candidates,
    ...(maxMessageSize ? { maxMessageSize: Number(maxMessageSize) } : {}),
  }
}

/**
 * Drops the mDNS host candidates (`<uuid>.local`) that a server-reflexive candidate on the same port stands
 * for. A page's router STUN responder saw that socket, unchanged in port, at a routable address, which every
 * peer that could resolve the name can reach as well; the name would cost ~90 bytes in a shared-state entry
 * and a lookup on the remote side that succeeds only within one LAN segment. A name with no such twin (no
 * STUN, or a NAT that changed the port) stays: it may be the only way in.
 */
export function withoutShadowedNames(f: SessionFacts): SessionFacts {
  const reflexive = new Set(f.candidates.filter((c) => c.type === 'srflx').map((c) => `${c.protocol} ${c.port}`))
  const candidates = f.candidates.filter((c) => !(c.type === 'host' && isMdnsName(c.address) && reflexive.has(`${c.protocol} ${c.port}`)))
  return candidates.length === f.candidates.length ? f : { ...f, candidates }
}

export const isMdnsName = (address: string): boolean => address.toLowerCase().endsWith('.local')

/** Rebuilds a session description that browsers and Node WebRTC stacks accept, from its facts. */
export function toSdp(facts: SessionFacts, type: 'offer' | 'answer', sessionId = '1'): string {
  const fingerprint = (facts.fingerprint.match(/../g) ?? []).join(':').toUpperCase()
  const lines = [
    'v=0',
    `o=- ${sessionId} 2 IN IP4 127.0.0.1`,
    's=-',
    't=0 0',
    'a=group:BUNDLE 0',
    'a=msid-semantic: WMS',
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
    'c=IN IP4 0.0.0.0',
    ...facts.candidates.map((c) => `a=${candidateLine(c)}`),
    'a=end-of-candidates',
    `a=ice-ufrag:${facts.ufrag}`,
    `a=ice-pwd:${facts.pwd}`,
    `a=fingerprint:sha-256 ${fingerprint}`,
    `a=setup:${type === 'offer' ? 'actpass' : facts.setup === 'actpass' ? 'active' : facts.setup}`,
    'a=mid:0',
    'a=sctp-port:5000',
    `a=max-message-size:${facts.maxMessageSize ?? 262144}`,
  ]
  return lines.join('\r\n') + '\r\n'
}

/**
 * The compact wire form of the facts: `[ufrag, pwd, fingerprint(base64url), setup, [candidate...], maxMessageSize?]`
 * with each candidate as `"foundation component protocol priority address port type[ tcptype]"`.
 */
export type CompactSession = [string, string, string, string, string[], number?]

export function compactSession(f: SessionFacts): CompactSession {
  const out: CompactSession = [
    f.ufrag,
    f.pwd,
    hexToBase64Url(f.fingerprint),
    f.setup,
    f.candidates.map((c) => `${c.foundation} ${c.component} ${c.protocol} ${c.priority} ${c.address} ${c.port} ${c.type}${c.tcpType ? ` ${c.tcpType}` : ''}`),
  ]
  if (f.maxMessageSize !== undefined) out.push(f.maxMessageSize)
  return out
}

export function expandSession(value: unknown): SessionFacts {
  if (!Array.isArray(value) || value.length < 5 || value.length > 6) throw badInput('compact session must be [ufrag, pwd, fingerprint, setup, candidates, maxMessageSize?]')
  const [ufrag, pwd, fp, setup, cands, mms] = value as unknown[]
  if (typeof ufrag !== 'string' || !/^[A-Za-z0-9+/]{4,256}$/.test(ufrag)) throw badInput('bad ICE ufrag')
  if (typeof pwd !== 'string' || !/^[A-Za-z0-9+/]{22,256}$/.test(pwd)) throw badInput('bad ICE pwd')
  if (typeof fp !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(fp)) throw badInput('bad fingerprint')
  if (setup !== 'actpass' && setup !== 'active' && setup !== 'passive') throw badInput('bad DTLS setup')
  if (!Array.isArray(cands) || cands.length > 16) throw badInput('candidates must be an array of at most 16')
  if (mms !== undefined && (typeof mms !== 'number' || !Number.isInteger(mms) || mms < 1024)) throw badInput('bad max message size')
  const candidates = cands.map((c) => {
    const parsed = typeof c === 'string' ? parseCompactCandidate(c) : undefined
    if (!parsed) throw badInput(`bad candidate ${JSON.stringify(c)}`)
    return parsed
  })
  return { ufrag, pwd, fingerprint: base64UrlToHex(fp), setup, candidates, ...(mms !== undefined ? { maxMessageSize: mms } : {}) }
}

const COMPACT_CANDIDATE = /^(\S{1,32}) (\d{1,3}) (udp|tcp) (\d{1,10}) (\S{1,64}) (\d{1,5}) (host|srflx|prflx|relay)(?: (active|passive|so))?$/

function parseCompactCandidate(c: string): Candidate | undefined {
  const m = COMPACT_CANDIDATE.exec(c)
  if (!m || Number(m[6]) < 1 || Number(m[6]) > 65535) return undefined
  return {
    foundation: m[1] as string,
    component: Number(m[2]),
    protocol: m[3] as 'udp' | 'tcp',
    priority: Number(m[4]),
    address: m[5] as string,
    port: Number(m[6]),
    type: m[7] as Candidate['type'],
    ...(m[8] ? { tcpType: m[8] } : {}),
  }
}

function hexToBase64Url(hex: string): string {
  return toBase64Url(Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16)))
}

function base64UrlToHex(b64: string): string {
  return Array.from(fromBase64Url(b64), (b) => b.toString(16).padStart(2, '0')).join('')
}
