import { channelPipe } from '../../src/rtc/channel-pipe.js'
import { FramedChannel } from '../../src/rtc/framed-channel.js'
import type { RtcFactory, RtcPeer } from '../../src/rtc/rtc-peer.js'
import { MemoryStore } from '../../src/storage/memory-store.js'
import { Replica } from '../../src/replica/replica.js'
import { ChannelLink, type SyncPipe } from '../../src/sync/links/channel-link.js'
import { cuttable, type GarbageFarEnd, type SuiteConnection, type SuiteNode, type SyncLinkFixture } from './sync-link-suite.js'

/** Two ends of one carrier: whatever `a` sends, `b` receives, and back. */
export interface PipePair {
  readonly a: SyncPipe
  readonly b: SyncPipe
}

/**
 * The sync-link suite's fixture for any message carrier: nodes are replicas in memory, and two nodes are joined
 * by one pipe pair (a data channel, or memory) with a channel link at each end.
 */
export function channelFixture(pipes: () => Promise<PipePair>, teardown: () => Promise<void> = async () => {}, timeoutMs = 1_000): SyncLinkFixture {
  const links: ChannelLink[] = []
  return {
    async node(name) {
      return { name, replica: new Replica({ store: new MemoryStore(), author: name }) }
    },
    async connect(a: SuiteNode, b: SuiteNode): Promise<SuiteConnection> {
      const pair = await pipes()
      let cut = false
      const ab = new ChannelLink({ replica: a.replica, pipe: cuttable(pair.a, () => cut), peer: b.name, ownName: a.name, timeoutMs })
      const ba = new ChannelLink({ replica: b.replica, pipe: cuttable(pair.b, () => cut), peer: a.name, ownName: b.name, timeoutMs })
      links.push(ab, ba)
      return { ab, ba, cut: () => void (cut = true), heal: () => void (cut = false) }
    },
    async garbage(node: SuiteNode): Promise<GarbageFarEnd> {
      const pair = await pipes()
      const link = new ChannelLink({ replica: node.replica, pipe: pair.a, peer: 'garbage', timeoutMs })
      links.push(link)
      const far = pair.b
      // Every request gets a reply of the right kind whose entries are not entries, or one of another kind.
      far.onMessage((text) => {
        const id = /"id":(\d+)/.exec(text)?.[1]
        if (id === undefined) return
        void far.send(`{"v":1,"id":${id},"r":"corrections","entries":{"planted":{"data":1,"author":"x","bleachTTL":"never"}}}`)
        void far.send(`{"v":1,"id":${id},"r":"entries","entries":{"planted":{"data":1,"author":"x","bleachTTL":9}}}`)
      })
      return {
        link,
        async attack() {
          const volley = [
            '{"v":1,"id":1,"q":"push","flavour":"ttl","type":"suite","entries":{"planted":{"data":1,"author":"x","bleachTTL":-1}}}',
            '{"v":1,"id":2,"q":"push","flavour":"ttl","type":"../../etc","entries":{}}',
            '{"v":1,"id":3,"q":"push","flavour":"fancy","type":"suite","entries":{}}',
            '{"v":1,"id":4,"q":"reconcile","body":{"v":1,"flavour":"ttl","type":"suite","buckets":16,"digests":"zz"}}',
            '{"v":1,"id":5,"q":"table","flavour":"ttl","type":"suite","entries":{}}',
            '{"v":1,"id":6,"q":"launch","flavour":"ttl","type":"suite"}',
            '{"v":1,"id":99999,"r":"corrections","entries":{}}',
            `{"v":1,"id":7,"q":"push","flavour":"ttl","type":"suite","entries":${'['.repeat(5000)}${']'.repeat(5000)}}`,
            ...Array.from({ length: 200 }, (_, i) => `{"v":1,"id":${100 + i},"q":"reconcile","body":{"v":1,"flavour":"ttl","type":"suite","buckets":16,"digests":"${'0'.repeat(256)}"}}`),
            'not json at all',
          ]
          for (const frame of volley) await far.send(frame)
          await new Promise((resolve) => setTimeout(resolve, 200))
        },
      }
    },
    async teardown() {
      for (const link of links) link.close()
      await teardown()
    },
  }
}

/** A pipe pair in memory: messages arrive on a later task, in order, as on a real carrier. */
export function memoryPipes(): PipePair {
  type Side = { listeners: Set<(text: string) => void>; closers: Set<(why: string) => void> }
  const sides: [Side, Side] = [
    { listeners: new Set(), closers: new Set() },
    { listeners: new Set(), closers: new Set() },
  ]
  let closed = false
  const close = () => {
    if (closed) return
    closed = true
    for (const s of sides) for (const l of [...s.closers]) l('closed')
  }
  const end = (me: Side, other: Side): SyncPipe => ({
    send(text) {
      if (closed) throw new Error('the pipe is closed')
      setTimeout(() => closed || other.listeners.forEach((l) => l(text)), 0)
    },
    onMessage: (l) => (me.listeners.add(l), () => void me.listeners.delete(l)),
    onClose: (l) => (me.closers.add(l), () => void me.closers.delete(l)),
    close,
  })
  return { a: end(sides[0], sides[1]), b: end(sides[1], sides[0]) }
}

/**
 * A pipe pair over a real WebRTC connection between two peers of `factory` (a FramedChannel at each end, as
 * the overlay runs it), resolved once both ends are open.
 */
export async function rtcPipes(factory: RtcFactory, openWithinMs = 10_000): Promise<PipePair> {
  const [a, b] = [factory(), factory()]
  const opened = (p: RtcPeer) =>
    new Promise<void>((resolve, reject) => {
      if (p.state === 'open') return resolve()
      const timer = setTimeout(() => reject(new Error(`a data channel did not open within ${openWithinMs} ms`)), openWithinMs)
      p.on('open', () => (clearTimeout(timer), resolve()))
      p.on('close', (reason, detail) => (clearTimeout(timer), reject(new Error(`a data channel closed before it opened: ${reason} ${detail ?? ''}`))))
    })
  const both = Promise.all([opened(a), opened(b)])
  try {
    await a.acceptAnswer(await b.acceptOffer(await a.createOffer()))
    await both
  } catch (e) {
    a.close()
    b.close()
    throw e
  }
  // On each connection's sync channel, as the overlay runs it; no keepalives of their own (the app channel's do that).
  const options = { maxMessageBytes: 4 * 1024 * 1024, keepAliveMs: 0 }
  return { a: channelPipe(new FramedChannel(a.syncChannel, options)), b: channelPipe(new FramedChannel(b.syncChannel, options)) }
}
