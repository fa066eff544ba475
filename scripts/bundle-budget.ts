/**
 * The most raw bytes `dist/browser/malla.js` may have. It ships on routers' flash and crosses slow mesh
 * links to every page. It was 100 KiB while pages only signaled; the overlay (the sync engine, reconciliation
 * and channel links in the page: about 17 KiB of it) took it to 102 KiB (34 KiB gzipped), so the budget is now
 * 128 KiB: room for directed connections and presence. File transfer (the protocol and a plain-JS SHA-256,
 * since pages on plain http have no WebCrypto) took it to 131 KiB (43 KiB gzipped); hashing files in
 * WebAssembly (hash-wasm's SHA-256, twice as fast as plain JS: 13 KB of it is the module in base64) to 150 KiB
 * (51 KiB gzipped). So the budget is now 160 KiB: still small enough to catch a dependency pulled in by
 * mistake. The build (scripts/build-browser.ts) and the test (test/integration/browser-bundle.test.ts) both
 * hold the bundle to it.
 */
export const BUNDLE_BUDGET_BYTES = 160 * 1024
