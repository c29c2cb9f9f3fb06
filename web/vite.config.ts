// Vite + Vitest configuration for the reelnet browser app.
//
// In development the app runs on Vite's dev server and everything the node
// gateway serves (the API, HLS playlists and segments, cached images) is
// proxied to a local node, so the browser sees a single origin exactly as it
// does in production, where the gateway serves the built bundle itself.
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

/** The node gateway a dev server forwards to (`reelnet-node` default listen address). */
const GATEWAY = 'http://127.0.0.1:8080';

const proxy = {
  // `ws` so watch-party rooms (WebSocket under /api/v1/rooms) work through the proxy too.
  '/api': { target: GATEWAY, ws: true },
  // Sign-in through the gateway (its OAuth client and refresh cookie): /auth/login, /auth/callback,
  // /auth/session, /auth/logout, /auth/account. The gateway's redirect_uri is its own origin, so
  // signing in on the dev server comes back to the gateway, not to Vite (open the gateway's URL).
  '/auth': { target: GATEWAY },
  '/hls': { target: GATEWAY },
  '/images': { target: GATEWAY },
};

export default defineConfig({
  plugins: [react()],
  server: { proxy },
  preview: { proxy },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // hls.js (~580 kB) is its own chunk, loaded only when the player opens.
    chunkSizeWarningLimit: 700,
  },
  test: {
    environment: 'jsdom',
    setupFiles: ['./src/test/setup.ts'],
    restoreMocks: true,
    unstubGlobals: true,
  },
});
