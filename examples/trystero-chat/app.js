// A Trystero app, written as Trystero's README shows. The one change for a mesh with no internet: the import
// comes from the router that served this page instead of from 'trystero'.
import {joinRoom, selfId} from '/malla-trystero.js' // was: import {joinRoom, selfId} from 'trystero'

const config = {appId: 'trystero-chat'}
const roomId = new URLSearchParams(location.search).get('room') || 'lobby'
const room = joinRoom(config, roomId)

const chat = room.makeAction('chat')
const file = room.makeAction('file')
const $ = id => document.getElementById(id)

$('self').textContent = selfId
$('room').textContent = roomId

const say = (from, text, cls) => {
  const li = document.createElement('li')
  if (cls) li.className = cls
  if (from) {
    const who = document.createElement('span')
    who.className = 'from'
    who.textContent = from === selfId ? 'me' : from.slice(0, 6)
    li.append(who)
  }
  li.append(text)
  $('lines').append(li)
  $('lines').scrollTop = $('lines').scrollHeight
}

const showPeers = () => {
  const ids = Object.keys(room.getPeers())
  $('count').textContent = `${ids.length} peer${ids.length === 1 ? '' : 's'}`
  $('peers').replaceChildren(
    ...ids.map(id => {
      const li = document.createElement('li')
      li.dataset.peer = id
      const name = document.createElement('code')
      name.textContent = id.slice(0, 10)
      const ping = document.createElement('button')
      ping.textContent = 'ping'
      ping.onclick = async () => (ping.textContent = `${Math.round(await room.ping(id))} ms`)
      li.append(name, ping)
      return li
    })
  )
}

room.onPeerJoin = peerId => {
  say(null, `${peerId.slice(0, 6)} joined`, 'event')
  showPeers()
}

room.onPeerLeave = peerId => {
  say(null, `${peerId.slice(0, 6)} left`, 'event')
  showPeers()
}

chat.onMessage = (text, {peerId}) => say(peerId, text)

$('say').addEventListener('submit', e => {
  e.preventDefault()
  const text = $('text').value.trim()
  if (!text) return
  chat.send(text)
  say(selfId, text, 'mine')
  $('text').value = ''
})

// One row per transfer, with a progress bar; received files become download links.
const transferRow = key => {
  let li = document.querySelector(`#transfers li[data-key="${key}"]`)
  if (!li) {
    li = document.createElement('li')
    li.dataset.key = key
    li.append(document.createElement('span'), document.createElement('progress'))
    $('transfers').append(li)
  }
  return li
}

file.onReceiveProgress = (percent, {peerId, metadata}) => {
  const li = transferRow(`in-${peerId}-${metadata.name}`)
  li.firstChild.textContent = `${metadata.name} from ${peerId.slice(0, 6)}`
  li.lastChild.value = percent
  li.dataset.progress = percent
}

file.onMessage = (data, {peerId, metadata}) => {
  const li = transferRow(`in-${peerId}-${metadata.name}`)
  const a = document.createElement('a')
  a.href = URL.createObjectURL(new Blob([data], {type: metadata.type}))
  a.download = metadata.name
  a.textContent = `${metadata.name} (${data.byteLength} bytes) from ${peerId.slice(0, 6)}`
  li.firstChild.replaceWith(a)
  li.dataset.done = data.byteLength
}

$('file').addEventListener('change', async e => {
  const f = e.target.files[0]
  if (!f) return
  const li = transferRow(`out-${f.name}`)
  li.firstChild.textContent = `${f.name} to everyone`
  await file.send(f, {
    metadata: {name: f.name, type: f.type},
    onProgress: (percent, {peerId}) => {
      li.lastChild.value = percent
      li.dataset.progress = percent
      li.dataset.peer = peerId
    }
  })
  li.dataset.done = f.size
})

$('leave').addEventListener('click', async () => {
  await room.leave()
  $('peers').replaceChildren()
  $('count').textContent = 'left the room'
  say(null, 'you left the room', 'event')
})
