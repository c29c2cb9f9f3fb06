/**
 * The installable-app pieces in `public/`: the web app manifest and its icons,
 * and the service worker, run here against fake `caches` and `fetch`.
 */
import { describe, expect, it, vi } from 'vitest';
import icon192 from '../public/icons/icon-192.png?inline';
import icon512 from '../public/icons/icon-512.png?inline';
import maskable512 from '../public/icons/icon-maskable-512.png?inline';
import manifestText from '../public/manifest.webmanifest?raw';
import swSource from '../public/sw.js?raw';
import { registerServiceWorker } from './registerServiceWorker';

/** Width and height from a PNG's IHDR, given as a data URL. */
function pngSize(dataUrl: string): [number, number] {
  const bytes = Uint8Array.from(atob(dataUrl.split(',')[1]!), (c) => c.charCodeAt(0));
  expect([...bytes.slice(1, 4)].map((b) => String.fromCharCode(b)).join('')).toBe('PNG');
  const view = new DataView(bytes.buffer);
  return [view.getUint32(16), view.getUint32(20)];
}

describe('web app manifest', () => {
  const manifest = JSON.parse(manifestText) as {
    name: string;
    start_url: string;
    display: string;
    icons: Array<{ src: string; sizes: string; type: string; purpose: string }>;
  };

  it('makes the app installable (standalone, start url, 192 and 512 icons)', () => {
    expect(manifest.name).toBe('reelnet');
    expect(manifest.start_url).toBe('/');
    expect(manifest.display).toBe('standalone');
    const sizes = manifest.icons.filter((i) => i.type === 'image/png').map((i) => `${i.sizes} ${i.purpose}`);
    expect(sizes).toEqual(['192x192 any', '512x512 any', '512x512 maskable']);
    expect(manifest.icons.some((i) => i.type === 'image/svg+xml')).toBe(true);
  });

  it('points at PNGs of the declared sizes', () => {
    expect(pngSize(icon192)).toEqual([192, 192]);
    expect(pngSize(icon512)).toEqual([512, 512]);
    expect(pngSize(maskable512)).toEqual([512, 512]);
  });
});

/** Runs sw.js in a fake worker scope. */
function loadServiceWorker() {
  const handlers: Record<string, (e: unknown) => void> = {};
  const store = new Map<string, Response>();
  const key = (r: Request | string) => (typeof r === 'string' ? new URL(r, 'http://localhost').href : r.url);
  const cache = {
    addAll: vi.fn(async (urls: string[]) => {
      for (const u of urls) store.set(key(u), new Response(`shell ${u}`));
    }),
    put: vi.fn(async (r: Request | string, res: Response) => {
      store.set(key(r), res);
    }),
  };
  const caches = {
    open: vi.fn(async () => cache),
    match: vi.fn(async (r: Request | string) => store.get(key(r))?.clone()),
    keys: vi.fn(async () => ['reelnet-shell-v0', 'reelnet-shell-v1', 'other-app']),
    delete: vi.fn(async () => true),
  };
  const network = vi.fn(async (r: Request) => {
    const res = new Response(`network ${new URL(r.url).pathname}`, { status: 200 });
    Object.defineProperty(res, 'type', { value: 'basic' });
    return res;
  });
  const self = {
    location: { origin: 'http://localhost' },
    addEventListener: (type: string, fn: (e: unknown) => void) => {
      handlers[type] = fn;
    },
    skipWaiting: vi.fn(async () => undefined),
    clients: { claim: vi.fn(async () => undefined) },
  };
  new Function('self', 'caches', 'fetch', swSource)(self, caches, network);

  async function lifecycle(type: 'install' | 'activate') {
    let done: Promise<unknown> = Promise.resolve();
    handlers[type]!({ waitUntil: (p: Promise<unknown>) => (done = p) });
    await done;
  }

  /** Dispatch a fetch event; resolves to the SW's answer, or null when it let the browser handle it. */
  async function request(path: string, init: { method?: string; mode?: RequestMode } = {}): Promise<Response | null> {
    const req = new Request(new URL(path, 'http://localhost'), { method: init.method ?? 'GET' });
    Object.defineProperty(req, 'mode', { value: init.mode ?? 'cors' });
    let answer: Promise<Response> | null = null;
    handlers.fetch!({ request: req, respondWith: (p: Promise<Response>) => (answer = p) });
    return answer;
  }

  return { lifecycle, request, network, caches, cache, store, self };
}

describe('service worker', () => {
  it('precaches the app shell on install and drops old shell caches on activate', async () => {
    const sw = loadServiceWorker();
    await sw.lifecycle('install');
    expect(sw.cache.addAll.mock.calls[0]![0]).toEqual(expect.arrayContaining(['/', '/manifest.webmanifest', '/icons/icon-192.png']));
    await sw.lifecycle('activate');
    expect(sw.caches.delete.mock.calls).toEqual([['reelnet-shell-v0']]);
    expect(sw.self.clients.claim).toHaveBeenCalled();
  });

  it('never answers /api, /auth, /hls or /images, nor anything but GET', async () => {
    const sw = loadServiceWorker();
    for (const path of [
      '/api/v1/catalog?q=x',
      '/api/v1/me/progress/tmdb-603',
      '/hls/tmdb-603/master.m3u8?token=t',
      '/hls/tmdb-603/720p/3.m4s?token=t',
      '/images/' + 'a'.repeat(64),
      '/healthz',
    ]) {
      expect(await sw.request(path), path).toBeNull();
    }
    // Sign-in navigations must reach the gateway (its redirects and cookie), never the cached shell.
    for (const path of ['/auth/login?return=%2F', '/auth/callback?code=c&state=s&iss=i', '/auth/account']) {
      expect(await sw.request(path, { mode: 'navigate' }), path).toBeNull();
    }
    expect(await sw.request('/assets/index-abc.js', { method: 'POST' })).toBeNull();
    expect(await sw.request('http://elsewhere.example/assets/x.js')).toBeNull();
    expect(sw.cache.put).not.toHaveBeenCalled();
  });

  it('serves hashed assets cache-first', async () => {
    const sw = loadServiceWorker();
    expect(await (await sw.request('/assets/index-abc.js'))!.text()).toBe('network /assets/index-abc.js');
    await vi.waitFor(() => expect(sw.cache.put).toHaveBeenCalledTimes(1));
    expect(await (await sw.request('/assets/index-abc.js'))!.text()).toBe('network /assets/index-abc.js');
    expect(sw.network).toHaveBeenCalledTimes(1);
  });

  it('loads pages from the network, and the cached shell offline', async () => {
    const sw = loadServiceWorker();
    await sw.lifecycle('install');
    expect(await (await sw.request('/movie/tmdb-603', { mode: 'navigate' }))!.text()).toBe('network /movie/tmdb-603');
    sw.network.mockRejectedValueOnce(new TypeError('offline'));
    await vi.waitFor(() => expect(sw.cache.put).toHaveBeenCalled());
    expect(await (await sw.request('/watch-later', { mode: 'navigate' }))!.text()).toBe('network /movie/tmdb-603');
  });
});

describe('service worker registration', () => {
  it('registers /sw.js in production builds only', () => {
    const register = vi.fn(() => Promise.resolve({} as ServiceWorkerRegistration));
    Object.defineProperty(navigator, 'serviceWorker', { configurable: true, value: { register } });
    try {
      registerServiceWorker(false);
      expect(register).not.toHaveBeenCalled();
      registerServiceWorker(true); // jsdom's document is already loaded
      expect(register).toHaveBeenCalledWith('/sw.js', { scope: '/' });
    } finally {
      delete (navigator as unknown as Record<string, unknown>).serviceWorker;
    }
  });
});
