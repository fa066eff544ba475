import { signal } from '@preact/signals'

/**
 * Every string the app shows, in LibreMesh's community languages. One flat dictionary per language, so a
 * new language is one more object and a missing string is a type error.
 */
const en = {
  'app.title': 'malla',
  'app.tagline': 'Talk, share files and see who is around: browser to browser, through your router, no internet needed.',
  'name.label': 'Your name',
  'name.placeholder': 'How others see you',
  'name.join': 'Enter',
  'name.save': 'Save',
  'name.hint': 'Kept in this browser only. Anyone on the network can pick any name.',
  'nav.people': 'People',
  'nav.chat': 'Chat',
  'nav.messages': 'Messages',
  'nav.files': 'Files',
  'nav.map': 'Map',
  'nav.tables': 'Tables',
  'status.joining': 'Joining through the router…',
  'status.alone': 'Connected to the router, waiting for others',
  'status.connected': 'Connected to {n} directly, {m} in the room',
  'status.failed': 'The router does not answer: {error}',
  'status.short': '{n} direct · {m} here',
  'notice.close': 'Close this note',
  'router.malla': 'malla router {name}',
  'router.libremesh': 'LibreMesh router',
  'notice.insecure': 'Plain http:// page (not a secure context): the app cannot be installed for offline use, and the browser\'s own cryptography is off, so files are checked with the app\'s own SHA-256.',
  'notice.libremesh': 'Plain LibreMesh router: people appear within about a second (polling), no STUN (pages behind other routers may not connect) and only this room\'s tables are shown.',
  'people.title': 'In the room',
  'people.you': 'you',
  'people.behind': 'behind {router}',
  'people.router.unknown': 'router unknown',
  'people.direct': 'direct',
  'people.relayed': 'via others',
  'people.away': 'away',
  'people.rtt': '{ms} ms',
  'people.message': 'Message',
  'people.sendFile': 'Send a file',
  'people.none': 'Nobody else yet. Open this page on another device on the network.',
  'chat.title': 'Room chat',
  'chat.placeholder': 'Write to everyone in the room',
  'chat.send': 'Send',
  'chat.empty': 'No messages in the last hour.',
  'chat.reached': 'reached everyone present',
  'chat.sent': 'sent',
  'chat.more': '{n} earlier lines not shown',
  'dm.title': 'Messages',
  'dm.pick': 'Pick a person to write to.',
  'dm.placeholder': 'Write to {name}',
  'dm.delivered': 'delivered',
  'dm.failed': 'not delivered',
  'dm.pending': 'sending…',
  'dm.waiting': 'waiting for them in the room',
  'dm.read': 'read',
  'dm.sealed': 'encrypted to them and signed by you',
  'id.title': 'Your key',
  'id.fingerprint': 'Fingerprint',
  'id.code': 'code {code}',
  'id.noKey': 'no key: cannot be verified',
  'id.export': 'Export my key',
  'id.import': 'Import a key',
  'id.import.tooLarge': 'that file is too large to be a key',
  'id.import.failed': 'Could not import the key: {error}',
  'id.hint': 'Your key is who you are here: it signs what you publish, and messages to you are encrypted to it. It stays in this browser. Export it to keep it safe or use it in GnuPG; whoever has the file can speak as you.',
  'id.notKept': 'This browser does not let the page keep your key: you will be someone new on your next visit. Export it to keep it.',
  'id.verify': 'Verify',
  'id.verified': 'verified',
  'id.verify.title': 'Verify {name}',
  'id.verify.how': 'Meet {name} in person and compare: their screen must show the same fingerprint as this one, and yours the same as theirs.',
  'id.verify.match': 'They match',
  'id.verify.forget': 'Not verified any more',
  'id.verify.close': 'Close',
  'notice.mismatch': 'A connection was closed because its certificate was not the one its owner signed: someone between you and {n} other page(s) may be listening in.',
  'files.title': 'Files',
  'files.to': 'Send to',
  'files.choose': 'Choose a file',
  'files.send': 'Send',
  'files.none': 'No transfers yet.',
  'files.incoming': '{name} wants to send you {file} ({size})',
  'files.accept': 'Accept',
  'files.decline': 'Decline',
  'files.cancel': 'Cancel',
  'files.save': 'Save',
  'files.dismiss': 'Remove',
  'files.waiting': 'waiting for {name} to accept',
  'files.speed': '{speed}/s, {left} left',
  'files.done': 'done, SHA-256 checked',
  'files.cancelled': 'cancelled',
  'files.failed': 'failed: {reason}',
  'files.connecting': 'connecting to {name}…',
  'map.title': 'Mesh map',
  'map.loading': 'Loading the map…',
  'map.quality': 'link quality {percent}%',
  'map.legend': 'Squares are routers (at their coordinates when LibreMesh knows them), dots are browsers; solid lines are router links, brighter for a better signal, dashed lines direct connections.',
  'tables.title': 'Shared tables',
  'tables.router': 'As the router sees them',
  'tables.page': 'As this page holds them',
  'tables.key': 'key',
  'tables.author': 'author',
  'tables.ttl': 'TTL',
  'tables.data': 'data',
  'tables.entries': '{n} entries',
  'tables.shown': '{n} entries; the {shown} changed last and first by key are shown',
  'tables.pick': 'Pick a table.',
  'lang.switch': 'Español',
  'unit.s': '{n} s',
  'unit.min': '{n} min',
}

export type StringKey = keyof typeof en

const es: Record<StringKey, string> = {
  'app.title': 'malla',
  'app.tagline': 'Hablá, compartí archivos y mirá quién está cerca: de navegador a navegador, a través de tu router, sin internet.',
  'name.label': 'Tu nombre',
  'name.placeholder': 'Cómo te ven los demás',
  'name.join': 'Entrar',
  'name.save': 'Guardar',
  'name.hint': 'Se guarda solo en este navegador. Cualquiera en la red puede elegir cualquier nombre.',
  'nav.people': 'Personas',
  'nav.chat': 'Chat',
  'nav.messages': 'Mensajes',
  'nav.files': 'Archivos',
  'nav.map': 'Mapa',
  'nav.tables': 'Tablas',
  'status.joining': 'Entrando a través del router…',
  'status.alone': 'Conectado al router, esperando a otros',
  'status.connected': 'Conectado a {n} directamente, {m} en la sala',
  'status.failed': 'El router no responde: {error}',
  'status.short': '{n} directos · {m} acá',
  'notice.close': 'Cerrar esta nota',
  'router.malla': 'router malla {name}',
  'router.libremesh': 'router LibreMesh',
  'notice.insecure': 'Página http:// simple (no es un contexto seguro): la app no se puede instalar para usar sin conexión, y la criptografía del navegador está apagada, así que los archivos se verifican con el SHA-256 propio de la app.',
  'notice.libremesh': 'Router LibreMesh simple: las personas aparecen en un segundo aprox. (consulta periódica), sin STUN (páginas detrás de otros routers pueden no conectarse) y solo se ven las tablas de esta sala.',
  'people.title': 'En la sala',
  'people.you': 'vos',
  'people.behind': 'detrás de {router}',
  'people.router.unknown': 'router desconocido',
  'people.direct': 'directo',
  'people.relayed': 'vía otros',
  'people.away': 'ausente',
  'people.rtt': '{ms} ms',
  'people.message': 'Mensaje',
  'people.sendFile': 'Enviar archivo',
  'people.none': 'Todavía no hay nadie más. Abrí esta página en otro dispositivo de la red.',
  'chat.title': 'Chat de la sala',
  'chat.placeholder': 'Escribí a todos en la sala',
  'chat.send': 'Enviar',
  'chat.empty': 'Sin mensajes en la última hora.',
  'chat.reached': 'llegó a todos los presentes',
  'chat.sent': 'enviado',
  'chat.more': '{n} líneas anteriores sin mostrar',
  'dm.title': 'Mensajes',
  'dm.pick': 'Elegí una persona para escribirle.',
  'dm.placeholder': 'Escribile a {name}',
  'dm.delivered': 'entregado',
  'dm.failed': 'no entregado',
  'dm.pending': 'enviando…',
  'dm.waiting': 'esperando en la sala',
  'dm.read': 'leído',
  'dm.sealed': 'cifrado para esa persona y firmado por vos',
  'id.title': 'Tu clave',
  'id.fingerprint': 'Huella',
  'id.code': 'código {code}',
  'id.noKey': 'sin clave: no se puede verificar',
  'id.export': 'Exportar mi clave',
  'id.import': 'Importar una clave',
  'id.import.tooLarge': 'ese archivo es demasiado grande para ser una clave',
  'id.import.failed': 'No se pudo importar la clave: {error}',
  'id.hint': 'Tu clave es quién sos acá: firma lo que publicás, y los mensajes para vos se cifran con ella. Queda en este navegador. Exportala para guardarla o usarla en GnuPG; quien tenga el archivo puede hablar como vos.',
  'id.notKept': 'Este navegador no deja que la página guarde tu clave: en tu próxima visita serás otra persona. Exportala para conservarla.',
  'id.verify': 'Verificar',
  'id.verified': 'verificado',
  'id.verify.title': 'Verificar a {name}',
  'id.verify.how': 'Encontrate con {name} en persona y comparen: su pantalla debe mostrar la misma huella que esta, y la tuya la misma que la suya.',
  'id.verify.match': 'Coinciden',
  'id.verify.forget': 'Ya no verificado',
  'id.verify.close': 'Cerrar',
  'notice.mismatch': 'Se cerró una conexión porque su certificado no era el que firmó su dueño: alguien entre vos y {n} otra(s) página(s) podría estar escuchando.',
  'files.title': 'Archivos',
  'files.to': 'Enviar a',
  'files.choose': 'Elegí un archivo',
  'files.send': 'Enviar',
  'files.none': 'Todavía no hay transferencias.',
  'files.incoming': '{name} quiere enviarte {file} ({size})',
  'files.accept': 'Aceptar',
  'files.decline': 'Rechazar',
  'files.cancel': 'Cancelar',
  'files.save': 'Guardar',
  'files.dismiss': 'Quitar',
  'files.waiting': 'esperando que {name} acepte',
  'files.speed': '{speed}/s, faltan {left}',
  'files.done': 'listo, SHA-256 verificado',
  'files.cancelled': 'cancelado',
  'files.failed': 'falló: {reason}',
  'files.connecting': 'conectando con {name}…',
  'map.title': 'Mapa de la red',
  'map.loading': 'Cargando el mapa…',
  'map.quality': 'calidad del enlace {percent}%',
  'map.legend': 'Los cuadrados son routers (en sus coordenadas cuando LibreMesh las conoce), los puntos navegadores; líneas llenas son enlaces entre routers, más claras con mejor señal, punteadas conexiones directas.',
  'tables.title': 'Tablas compartidas',
  'tables.router': 'Como las ve el router',
  'tables.page': 'Como las tiene esta página',
  'tables.key': 'clave',
  'tables.author': 'autor',
  'tables.ttl': 'TTL',
  'tables.data': 'datos',
  'tables.entries': '{n} entradas',
  'tables.shown': '{n} entradas; se muestran las {shown} cambiadas por último y primeras por clave',
  'tables.pick': 'Elegí una tabla.',
  'lang.switch': 'English',
  'unit.s': '{n} s',
  'unit.min': '{n} min',
}

export type Lang = 'en' | 'es'
const DICTIONARIES: Record<Lang, Record<StringKey, string>> = { en, es }
const STORED = 'malla.lang'

/** The browser's first language we have, unless the person switched before (kept in this browser). */
function initialLang(): Lang {
  const stored = safeStorage()?.getItem(STORED)
  if (stored === 'en' || stored === 'es') return stored
  for (const l of navigator.languages ?? [navigator.language]) {
    const base = l.slice(0, 2).toLowerCase()
    if (base === 'es' || base === 'en') return base
  }
  return 'en'
}

export const lang = signal<Lang>(initialLang())

export function setLang(next: Lang): void {
  lang.value = next
  safeStorage()?.setItem(STORED, next)
  document.documentElement.lang = next
}

/** The string `key` in the current language, with each `{name}` replaced by `params[name]`. */
export function t(key: StringKey, params: Record<string, string | number> = {}): string {
  return DICTIONARIES[lang.value][key].replace(/\{(\w+)\}/g, (m, name: string) => (name in params ? String(params[name]) : m))
}

/** localStorage (or sessionStorage), or nothing where it is refused (some private modes, sandboxed frames). */
export function safeStorage(kind: 'local' | 'session' = 'local'): Storage | undefined {
  try {
    return kind === 'local' ? globalThis.localStorage : globalThis.sessionStorage
  } catch {
    return undefined
  }
}

/** Sizes and durations as people read them. */
export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB']
  let i = 0
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000
    i++
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '…'
  return seconds < 90 ? t('unit.s', { n: Math.max(0, Math.round(seconds)) }) : t('unit.min', { n: Math.round(seconds / 60) })
}

export function formatTime(ms: number): string {
  return new Date(ms).toLocaleTimeString(lang.value, { hour: '2-digit', minute: '2-digit' })
}
