const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/**
 * The plain page every daemon serves at `/`: its tables, updated live from the change stream.
 * Self-contained (no bundle, no external asset) so it also works from a router with no internet.
 */
export function renderTablesPage(name: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>malla · ${escapeHtml(name)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222}h1{font-size:1.3rem}h2{font-size:1.05rem;margin:1.2rem 0 .3rem}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}
td.data{font-family:monospace;white-space:pre-wrap;word-break:break-all}.removed{color:#999;text-decoration:line-through}
#status{color:#666}
</style></head>
<body><h1>malla router <span id="name">${escapeHtml(name)}</span></h1>
<p id="status">loading…</p><div id="tables"></div>
<script type="module">
const base = '/malla/v1/'
const root = document.getElementById('tables')
const status = document.getElementById('status')
const sections = new Map()
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';')
async function show(flavour, type) {
  const res = await fetch(base + (flavour === 'ttl' ? 'tables/' : 'multiwriter/') + encodeURIComponent(type))
  const table = await res.json()
  const id = flavour + '/' + type
  let section = sections.get(id)
  if (!section) {
    section = document.createElement('section')
    section.dataset.table = id
    sections.set(id, section)
    root.append(section)
  }
  const rows = Object.keys(table).sort().map((key) => {
    const e = table[key]
    const removed = e.data === null || e.data === undefined
    return '<tr data-key="' + esc(key) + '"' + (removed ? ' class="removed"' : '') + '><td>' + esc(key) + '</td><td class="data">' +
      esc(removed ? '(removed)' : JSON.stringify(e.data)) + '</td><td>' + esc(e.author) + '</td><td>' +
      esc(e.bleachTTL ?? ('changes ' + e.changes)) + '</td></tr>'
  })
  section.innerHTML = '<h2>' + esc(type) + (flavour === 'ttl' ? '' : ' (multi-writer)') + ' <small>' + rows.length +
    ' entries</small></h2><table><tr><th>key</th><th>data</th><th>author</th><th>TTL</th></tr>' + rows.join('') + '</table>'
}
async function showAll() {
  const refs = await (await fetch(base + 'tables')).json()
  await Promise.all(refs.map((r) => show(r.flavour, r.type)))
  status.textContent = refs.length + ' tables, live'
}
const events = new EventSource(base + 'events')
events.addEventListener('change', (e) => {
  const change = JSON.parse(e.data)
  show(change.flavour, change.type).catch((err) => (status.textContent = String(err)))
})
events.onerror = () => (status.textContent = 'reconnecting…')
// On the first connection and whenever the router could not replay what was missed: read everything again.
const reload = () => showAll().catch((err) => (status.textContent = String(err)))
events.addEventListener('hello', reload)
events.addEventListener('reset', reload)
events.onopen = () => (status.textContent = 'live')
</script></body></html>
`
}
