import { weriftRtcFactory } from '../../src/node/rtc/werift-peer.js'
import { channelFixture, rtcPipes } from './channel-fixture.js'
import { syncLinkSuite } from './sync-link-suite.js'

/** Loopback only: nothing here may reach an address off this machine (werift would skip 127.0.0.1 unless told). */
const loopback = weriftRtcFactory({ hostAddresses: ['127.0.0.1'] })

syncLinkSuite('channel link over a werift data channel', async () => channelFixture(() => rtcPipes(loopback)))
