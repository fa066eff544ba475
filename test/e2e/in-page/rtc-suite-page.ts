/**
 * Entry of the in-page bundle: the RTC conformance suite (test/conformance/rtc-suite.ts, unchanged) over
 * the browser adapter and the page's own RTCPeerConnection, two peers of one page.
 */
import { browserRtcFactory } from '../../../src/browser/rtc/browser-peer.js'
import { rtcSuite } from '../../conformance/rtc-suite.js'
import { runRegistered } from './node-test.js'

const factory = browserRtcFactory()
rtcSuite('browser ↔ browser (Chromium, one page)', async () => ({ offerer: factory, answerer: factory }))
;(globalThis as unknown as { runSuite: typeof runRegistered }).runSuite = runRegistered
