/**
 * Seek-bar thumbnails: the WebVTT thumbnail index a movie's play answer points at
 * (`thumbnails_url`), whose cues each name a tile of a JPEG sprite sheet
 * (`sheet-3.jpg#xywh=160,90,160,90`), parsed into {@link Thumbnail}s, and the lookup of the
 * tile for a time. The parser is bounded (cue count, line length) and skips what it cannot
 * read instead of failing: a bad index only means no thumbnails.
 */

/** One tile: shown for times in [start, end). `url` is absolute (resolved against the index). */
export interface Thumbnail {
  start: number;
  end: number;
  url: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Most cues read from one index (a 3-hour movie at one tile per 2 s is 5400). */
export const MAX_THUMBNAIL_CUES = 20_000;
/** Largest index read, bytes of text. */
export const MAX_THUMBNAIL_INDEX_CHARS = 4 * 1024 * 1024;

const TIMING = /^\s*((?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})\s+-->\s+((?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3})/;

/** `01:02:03.500` or `02:03.500` → seconds; NaN when malformed. */
export function parseTimestamp(text: string): number {
  const parts = text.replace(',', '.').split(':');
  if (parts.length < 2 || parts.length > 3) return Number.NaN;
  const secs = Number(parts[parts.length - 1]);
  const mins = Number(parts[parts.length - 2]);
  const hours = parts.length === 3 ? Number(parts[0]) : 0;
  if (![secs, mins, hours].every(Number.isFinite) || mins >= 60 || secs >= 60) return Number.NaN;
  return hours * 3600 + mins * 60 + secs;
}

/**
 * Parse a WebVTT thumbnail index. `base` resolves relative tile URLs (the index's own URL);
 * its `token` query parameter is added to same-origin tile URLs that have none.
 * Cues without a valid `#xywh=x,y,w,h` fragment, with bad timings or an end before the
 * start are skipped. Sorted by start time.
 */
export function parseThumbnailVtt(text: string, base: string): Thumbnail[] {
  if (text.length > MAX_THUMBNAIL_INDEX_CHARS) text = text.slice(0, MAX_THUMBNAIL_INDEX_CHARS);
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  if (!/^WEBVTT(?:[ \t].*)?$/.test(lines[0] ?? '')) return [];
  const out: Thumbnail[] = [];
  let baseUrl: URL | null = null;
  try {
    baseUrl = new URL(base);
  } catch {
    baseUrl = null;
  }
  const token = baseUrl?.searchParams.get('token') ?? null;
  for (let i = 1; i < lines.length && out.length < MAX_THUMBNAIL_CUES; i++) {
    const m = TIMING.exec(lines[i] ?? '');
    if (!m) continue;
    const start = parseTimestamp(m[1] ?? '');
    const end = parseTimestamp(m[2] ?? '');
    const payload = (lines[i + 1] ?? '').trim();
    i += 1;
    if (!(end > start) || !payload) continue;
    const hash = payload.lastIndexOf('#xywh=');
    if (hash <= 0) continue;
    const nums = payload.slice(hash + 6).split(',').map((n) => Number(n));
    if (nums.length !== 4 || !nums.every((n) => Number.isInteger(n) && n >= 0)) continue;
    const [x, y, w, h] = nums as [number, number, number, number];
    if (w === 0 || h === 0) continue;
    let url: string;
    try {
      const u = new URL(payload.slice(0, hash), base);
      // Every /hls URL carries the playback token: a tile of the same origin named without
      // one gets the index's.
      if (token && u.origin === baseUrl?.origin && !u.searchParams.has('token')) u.searchParams.set('token', token);
      url = u.toString();
    } catch {
      continue;
    }
    out.push({ start, end, url, x, y, w, h });
  }
  return out.sort((a, b) => a.start - b.start);
}

/** The tile shown at `time` (the last cue starting at or before it, if `time` is before its end). */
export function thumbnailAt(cues: readonly Thumbnail[], time: number): Thumbnail | null {
  let lo = 0;
  let hi = cues.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((cues[mid]?.start ?? Infinity) <= time) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  const cue = found >= 0 ? cues[found] : undefined;
  return cue && time < cue.end ? cue : null;
}

/** The thumbnail index `url`'s tiles (empty when it cannot be fetched or read). */
export async function loadThumbnails(url: string, signal?: AbortSignal): Promise<Thumbnail[]> {
  const absolute = new URL(url, window.location.href).toString();
  const res = await fetch(absolute, { signal, credentials: 'same-origin' });
  if (!res.ok) return [];
  return parseThumbnailVtt(await res.text(), absolute);
}
