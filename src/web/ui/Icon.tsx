import type { View } from './App.js'

/**
 * The tabs' icons, drawn inline: emoji depend on the device's fonts (a router's visitors bring every kind of
 * phone) and an icon font would be one more download.
 */
const PATHS: Record<View | 'lock', string> = {
  lock: 'M6 11h12v9H6zM8.5 11V8a3.5 3.5 0 0 1 7 0v3',
  people: 'M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zm-7 10v-1a6 6 0 0 1 12 0v1M17 11a3 3 0 1 0 0-6M22 21v-1a5 5 0 0 0-4-4.9',
  chat: 'M21 12a8 8 0 0 1-11.6 7.1L4 21l1.9-5.4A8 8 0 1 1 21 12z',
  messages: 'M3 6h18v12H3zM3 6l9 7 9-7',
  files: 'M3 7a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2zM12 10v6m-3-3l3 3 3-3',
  map: 'M5 6a2 2 0 1 0 0 .1M19 6a2 2 0 1 0 0 .1M12 18a2 2 0 1 0 0 .1M6.5 7.5l4.5 9M17.5 7.5l-4.5 9M7 6h10',
  tables: 'M3 4h18v16H3zM3 10h18M3 15h18M9 4v16',
}

export function Icon({ view, size = 20 }: { view: View | 'lock'; size?: number }) {
  return (
    <svg class="icon" viewBox="0 0 24 24" width={size} height={size} aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round">
      <path d={PATHS[view]} />
    </svg>
  )
}
