import type { Json } from '../../src/core/types.js'
import { AsyncNodeDouble } from './async-node-double.js'

/**
 * Three LibreMesh routers as their publishers describe themselves (lime-packages' shared-state-publish_node_info,
 * _wifi_links_info, _bat_links_info): LiMe-a to the west, LiMe-b to the east, LiMe-c to the north; a strong Wi-Fi
 * link a—b (both ends publish it), a weak one b—c, and a batman-adv link that only c publishes, towards a MAC of a.
 */
export const MAP_TABLES: Record<string, Record<string, Json>> = {
  node_info: {
    'LiMe-a': { hostname: 'LiMe-a', board: 'tl-wdr3600', coordinates: { lat: '-31.80', long: '-64.50' }, macs: ['02:aa:00:00:00:01', '02:aa:00:00:00:02'], device: 'Router' },
    'LiMe-b': { hostname: 'LiMe-b', board: 'tl-wdr3600', coordinates: { lat: '-31.80', long: '-64.40' }, macs: ['02:bb:00:00:00:01'], device: 'Router' },
    'LiMe-c': { hostname: 'LiMe-c', board: 'librerouter-v1', coordinates: { lat: '-31.72', long: '-64.45' }, macs: ['02:cc:00:00:00:01'], device: 'Router' },
  },
  wifi_links_info: {
    'LiMe-a': { src_loc: { lat: '-31.80', long: '-64.50' }, links: { '02aa0000000102bb00000001': { src_mac: '02:aa:00:00:00:01', dst_mac: '02:bb:00:00:00:01', signal: -45, chains: [-46, -48], iface: 'wlan1-mesh', freq: 5240, channel: 48 } } },
    'LiMe-b': {
      src_loc: { lat: '-31.80', long: '-64.40' },
      links: {
        '02aa0000000102bb00000001': { src_mac: '02:bb:00:00:00:01', dst_mac: '02:aa:00:00:00:01', signal: -47, chains: [-47, -49], iface: 'wlan1-mesh', freq: 5240, channel: 48 },
        '02bb0000000102cc00000001': { src_mac: '02:bb:00:00:00:01', dst_mac: '02:cc:00:00:00:01', signal: -80, chains: [-81, -82], iface: 'wlan1-mesh', freq: 5240, channel: 48 },
      },
    },
    'LiMe-c': { src_loc: { lat: '-31.72', long: '-64.45' }, links: { '02bb0000000102cc00000001': { src_mac: '02:cc:00:00:00:01', dst_mac: '02:bb:00:00:00:01', signal: -82, chains: [-83, -84], iface: 'wlan1-mesh', freq: 5240, channel: 48 } } },
  },
  bat_links_info: {
    'LiMe-c': { src_loc: { lat: '-31.72', long: '-64.45' }, links: { '02aa0000000202cc00000001': { src_mac: '02:cc:00:00:00:01', dst_mac: '02:aa:00:00:00:02', tq: 204, iface: 'wlan0-mesh_29' } } },
  },
}

/** The shared-state-async daemon of LiMe-a, holding what it and its neighbours published. */
export function routerAsyncDaemon(): AsyncNodeDouble {
  const types = new Map(Object.keys(MAP_TABLES).map((t) => [t, { updateInterval: 30, ttl: 2400 }] as const))
  types.set('bat-hosts', { updateInterval: 30, ttl: 2400 })
  const daemon = new AsyncNodeDouble('LiMe-a', types)
  for (const [type, table] of Object.entries(MAP_TABLES)) {
    const state = daemon.states.get(type) as Map<string, { author: string; ttl: number; data: Json }>
    for (const [host, data] of Object.entries(table)) state.set(host, { author: host, ttl: 2431, data })
  }
  return daemon
}
