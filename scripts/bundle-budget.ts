/**
 * The most raw bytes `dist/browser/malla.js` may have. It ships on routers' flash and crosses slow mesh
 * links to every page; at about four times today's size, it leaves room for signaling and WebRTC while
 * catching a dependency pulled in by mistake. The build (scripts/build-browser.ts) and the test
 * (test/integration/browser-bundle.test.ts) both hold the bundle to it.
 */
export const BUNDLE_BUDGET_BYTES = 100 * 1024
