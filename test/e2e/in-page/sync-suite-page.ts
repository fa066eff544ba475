/**
 * Entry of the in-page bundle: the sync-link conformance suite (test/conformance/sync-link-suite.ts, unchanged)
 * over channel links on Chromium's own data channels, between replicas of one page.
 */
import { browserRtcFactory } from '../../../src/browser/rtc/browser-peer.js'
import { channelFixture, rtcPipes } from '../../conformance/channel-fixture.js'
import { syncLinkSuite } from '../../conformance/sync-link-suite.js'
import { runRegistered } from './node-test.js'

const factory = browserRtcFactory()
syncLinkSuite('channel link over a Chromium data channel (one page)', async () => channelFixture(() => rtcPipes(factory)))
;(globalThis as unknown as { runSuite: typeof runRegistered }).runSuite = runRegistered
