/** Fixtures of the operator console's answers (node/openapi.yaml, tracker/openapi.yaml). */
import { TOKENS } from './fetch';

export const ADMIN_TOKENS = { ...TOKENS, user: { ...TOKENS.user, role: 'admin' } } as const;

export const NODE_ID = 'a'.repeat(64);
export const PEER_ID = 'b'.repeat(64);

export function consoleStatus(over: Record<string, unknown> = {}) {
  return {
    node_id: NODE_ID,
    public_url: 'http://127.0.0.1:8080',
    reachability: 'private',
    confirmed_addresses: [],
    relay: '/ip4/198.18.0.1/udp/4001/quic-v1/p2p/relay/p2p-circuit',
    https_not_after: null,
    membership: {
      member: true,
      network_id: 'net-1',
      roles: ['replica', 'ingest'],
      open: false,
      serial: 3,
      not_after: 1_900_000_000,
      revocation_serial: 1,
      problem: null,
    },
    peers: [{ node_id: PEER_ID, gateway_url: 'http://127.0.0.1:8081', latency_ms: 12.5 }],
    connected_peers: 1,
    disk: { quota_bytes: 10 * 1024 ** 3, held_bytes: 2 * 1024 ** 3, cache_bytes: 1024 ** 3, downloads_bytes: 512 * 1024 ** 2, reserved_bytes: 0 },
    replicas: [
      { movie_id: 'tmdb-603', manifest_id: 'c'.repeat(64), origin: PEER_ID, held_segments: 30, total_segments: 40, completeness: 0.75 },
    ],
    served: { bytes_local: 3 * 1024 ** 2, bytes_peer: 1024 ** 2, segments_local: 30, segments_peer: 10, hit_ratio: 0.75 },
    ...over,
  };
}

export function sample(at: number, requests: number, p50: number | null) {
  return {
    at,
    secs: 10,
    requests,
    bytes_local: requests * 1024,
    bytes_peer: 0,
    segments_local: requests,
    segments_peer: 0,
    fetches: p50 === null ? 0 : 4,
    fetch_p50_ms: p50,
    fetch_p95_ms: p50 === null ? null : p50 * 2,
    fetch_p99_ms: p50 === null ? null : p50 * 4,
  };
}

export function job(id: number, over: Record<string, unknown> = {}) {
  return {
    id,
    state: 'transcoding',
    source: '/srv/movies/clip.mp4',
    movie_id: 'local-clip',
    title: 'Clip',
    downloaded_bytes: 0,
    total_bytes: 0,
    downloaded_fraction: null,
    position_s: 30,
    duration_s: 120,
    position_fraction: 0.25,
    speed_x: 3.5,
    eta_s: 26,
    segments: 5,
    manifest_id: null,
    elapsed_s: 9,
    error: null,
    not_supported: [],
    tracks: [],
    ...over,
  };
}
