const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/**
 * The page every daemon serves at `/room`: join a room of browsers through this router (`/malla.js`) and
 * talk to the peers it connects to. It opens nothing until asked to join, so a page that drives it by
 * script (the browser tests) holds no connection to the router but its own.
 */
export function renderRoomPage(name: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>malla room · ${escapeHtml(name)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222;max-width:48rem}h1{font-size:1.3rem}
#log{border:1px solid #ddd;min-height:10rem;padding:.5rem;font-family:monospace;white-space:pre-wrap}
input{font:inherit;padding:.2rem .4rem}#status{color:#666}
</style></head>
<body><h1>malla room, through router <span>${escapeHtml(name)}</span></h1>
<form id="join"><input id="room" value="lobby" aria-label="room"> <button>join</button></form>
<p id="status">not joined</p><p>peers: <span id="peers">none</span></p>
<div id="log" aria-live="polite"></div>
<form id="say" hidden><input id="text" size="40" aria-label="message"> <button>send to all</button></form>
<script type="module">
const $ = (id) => document.getElementById(id)
const line = (s) => { $('log').textContent += s + '\\n' }
let joined
$('join').addEventListener('submit', async (e) => {
  e.preventDefault()
  if (joined) return
  const { joinRoom } = await import('/malla.js')
  $('status').textContent = 'joining…'
  joined = await joinRoom($('room').value)
  $('status').textContent = 'joined as ' + joined.id + ' (router: ' + joined.router.kind + ')'
  $('say').hidden = false
  const show = () => { $('peers').textContent = joined.mesh.peers().map((p) => p.id).join(', ') || 'none' }
  joined.mesh.on('peer', (p) => {
    show()
    line('connected to ' + p.id)
    p.on('message', (v) => line(p.id + ': ' + (typeof v === 'string' ? v : JSON.stringify(v))))
  })
  joined.mesh.on('peer-closed', (p, why) => { show(); line(p.id + ' left (' + why + ')') })
  addEventListener('pagehide', () => joined.leave())
})
$('say').addEventListener('submit', (e) => {
  e.preventDefault()
  for (const p of joined.mesh.peers()) p.send($('text').value)
  line('me: ' + $('text').value)
  $('text').value = ''
})
</script></body></html>
`
}
