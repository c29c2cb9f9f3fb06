/*
 * reelnet service worker: keeps the app shell (index.html, the hashed JS/CSS
 * bundles, icons, manifest) so the installed app opens instantly and shows its
 * own "could not reach the server" states offline.
 *
 * It never touches the API, sign-in, video or images: /api, /auth, /hls and /images
 * always go to the network, uncached, exactly as without a service worker (sign-in
 * navigations must reach the gateway, never fall back to the cached shell).
 */
const CACHE = 'reelnet-shell-v1';
const SHELL = ['/', '/manifest.webmanifest', '/favicon.svg', '/icons/icon.svg', '/icons/icon-192.png', '/icons/icon-512.png'];
const NETWORK_ONLY = ['/api/', '/auth/', '/hls/', '/images/', '/.well-known/', '/healthz', '/metrics'];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('reelnet-shell-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

function put(request, response) {
  if (response.ok && response.type === 'basic') {
    const copy = response.clone();
    caches.open(CACHE).then((cache) => cache.put(request, copy));
  }
  return response;
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (NETWORK_ONLY.some((p) => url.pathname === p.replace(/\/$/, '') || url.pathname.startsWith(p))) return;

  if (request.mode === 'navigate') {
    // Every app route is index.html (the gateway's SPA fallback): fresh when online, cached offline.
    event.respondWith(
      fetch(request)
        .then((response) => put('/', response))
        .catch(() => caches.match('/').then((cached) => cached || Response.error())),
    );
    return;
  }

  if (url.pathname.startsWith('/assets/')) {
    // Content-hashed bundles never change: cache first.
    event.respondWith(caches.match(request).then((cached) => cached || fetch(request).then((r) => put(request, r))));
    return;
  }

  if (SHELL.includes(url.pathname)) {
    // Icons and manifest: answer from the cache, refresh it in the background.
    event.respondWith(
      caches.match(request).then((cached) => {
        const fresh = fetch(request)
          .then((r) => put(request, r))
          .catch(() => cached || Response.error());
        return cached || fresh;
      }),
    );
  }
});
