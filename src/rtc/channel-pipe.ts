import type { SyncPipe } from '../sync/links/channel-link.js'
import type { FramedChannel } from './framed-channel.js'

/**
 * A FramedChannel as the carrier of a channel link: its text messages are sync frames (any size: the channel
 * cuts them into chunks). Anything else on it (JSON or binary messages) is not a frame, and ends the link.
 */
export function channelPipe(channel: FramedChannel): SyncPipe {
  return {
    send: (text) => channel.send(text),
    onMessage(listener) {
      return channel.on('message', (value, kind) => {
        if (kind === 'text') listener(value as string)
        else listener(`not a sync frame: a ${kind} message`)
      })
    },
    onClose(listener) {
      let fired = false
      const once = (why: string) => {
        if (fired) return
        fired = true
        offClose()
        offError()
        listener(why)
      }
      const offClose = channel.peer.on('close', (reason, detail) => once(detail ? `${reason}: ${detail}` : reason))
      const offError = channel.on('error', (e) => once(e.message))
      if (channel.peer.state === 'closed') queueMicrotask(() => once('closed'))
      return () => {
        offClose()
        offError()
      }
    },
    close() {
      channel.close()
      channel.peer.close()
    },
  }
}
