/**
 * The most raw bytes `dist/browser/malla.js` may have. It ships on routers' flash and crosses slow mesh
 * links to every page. It was 100 KiB while pages only signaled; the overlay (the sync engine, reconciliation
 * and channel links in the page: about 17 KiB of it) took it to 102 KiB (34 KiB gzipped), so the budget is now
 * 128 KiB: room for directed connections and presence. File transfer (the protocol and a plain-JS SHA-256,
 * since pages on plain http have no WebCrypto) took it to 131 KiB (43 KiB gzipped); hashing files in
 * WebAssembly (hash-wasm's SHA-256, twice as fast as plain JS: 13 KB of it is the module in base64) to 150 KiB
 * (51 KiB gzipped), under a budget of 160 KiB. Signed signaling (§18.2) has every page check the signatures of
 * the records it reads and merges: Ed25519 (@noble/ed25519, 6.6 KiB, rather than @noble/curves' 30), SHA-512
 * and SHA-1, the few OpenPGP packet shapes and the IndexedDB key store took it to 174 KiB (61 KiB gzipped);
 * openpgp.js itself stays out (`malla/identity` loads it when a key is made or imported). The key directory,
 * messages that wait and signed presence (§18.3, §18.4) took it to 184 KiB (64 KiB gzipped). So the budget is
 * now 192 KiB: still small enough to catch a dependency pulled in by mistake (openpgp.js alone is 350). The build (scripts/build-browser.ts) and the test (test/integration/browser-bundle.test.ts) both
 * hold the bundle to it.
 */
export const BUNDLE_BUDGET_BYTES = 192 * 1024
