import { describe, expect, it } from 'vitest';
import { MAX_THUMBNAIL_CUES, parseThumbnailVtt, parseTimestamp, thumbnailAt } from './thumbnails';

const BASE = 'http://127.0.0.1:8083/hls/tmdb-603/thumbs/index.vtt?token=pt';

const INDEX = `WEBVTT

1
00:00:00.000 --> 00:00:05.000
sheet-0.jpg#xywh=0,0,160,90

2
00:00:05.000 --> 00:00:10.000
sheet-0.jpg#xywh=160,0,160,90

00:01:00.000 --> 01:00:10.500
/hls/tmdb-603/thumbs/sheet-1.jpg?token=pt#xywh=0,90,160,90
`;

describe('parseThumbnailVtt', () => {
  it('reads cues, resolving tile URLs against the index', () => {
    const cues = parseThumbnailVtt(INDEX, BASE);
    expect(cues).toEqual([
      { start: 0, end: 5, url: 'http://127.0.0.1:8083/hls/tmdb-603/thumbs/sheet-0.jpg?token=pt', x: 0, y: 0, w: 160, h: 90 },
      { start: 5, end: 10, url: 'http://127.0.0.1:8083/hls/tmdb-603/thumbs/sheet-0.jpg?token=pt', x: 160, y: 0, w: 160, h: 90 },
      { start: 60, end: 3610.5, url: 'http://127.0.0.1:8083/hls/tmdb-603/thumbs/sheet-1.jpg?token=pt', x: 0, y: 90, w: 160, h: 90 },
    ]);
  });

  it('passes the playback token on to same-origin tiles only', () => {
    const text = 'WEBVTT\n\n00:00.000 --> 00:02.000\nhttps://cdn.example/a.jpg#xywh=0,0,1,1\n\n00:02.000 --> 00:04.000\nb.jpg?token=own#xywh=0,0,1,1\n';
    expect(parseThumbnailVtt(text, BASE).map((c) => c.url)).toEqual([
      'https://cdn.example/a.jpg',
      'http://127.0.0.1:8083/hls/tmdb-603/thumbs/b.jpg?token=own',
    ]);
    expect(parseThumbnailVtt(text, 'http://127.0.0.1:8083/x/index.vtt')[1]!.url).toBe('http://127.0.0.1:8083/x/b.jpg?token=own');
  });

  it('accepts CRLF, a BOM and a header comment', () => {
    const text = '\uFEFFWEBVTT - thumbnails\r\n\r\n00:00.000 --> 00:02.000\r\na.jpg#xywh=1,2,3,4\r\n';
    expect(parseThumbnailVtt(text, BASE)).toHaveLength(1);
  });

  it('skips what it cannot read and rejects what is not WebVTT', () => {
    expect(parseThumbnailVtt('NOT VTT\n\n00:00.000 --> 00:02.000\na.jpg#xywh=0,0,1,1', BASE)).toEqual([]);
    const bad = `WEBVTT

00:00:02.000 --> 00:00:01.000
a.jpg#xywh=0,0,10,10

00:00:02.000 --> 00:00:03.000
a.jpg

00:00:03.000 --> 00:00:04.000
a.jpg#xywh=0,0,-1,10

00:00:04.000 --> 00:00:05.000
a.jpg#xywh=0,0,10

00:00:05.000 --> 00:00:06.000
a.jpg#xywh=0,0,0,10

00:00:06.000 --> 00:00:99.000
a.jpg#xywh=0,0,10,10

00:00:07.000 --> 00:00:08.000
good.jpg#xywh=0,0,10,10
`;
    const cues = parseThumbnailVtt(bad, BASE);
    expect(cues.map((c) => c.url)).toEqual(['http://127.0.0.1:8083/hls/tmdb-603/thumbs/good.jpg?token=pt']);
  });

  it('is bounded', () => {
    const n = MAX_THUMBNAIL_CUES + 50;
    let text = 'WEBVTT\n\n';
    for (let i = 0; i < n; i++) text += `${parseTimestampText(i)} --> ${parseTimestampText(i + 1)}\ns.jpg#xywh=0,0,1,1\n\n`;
    expect(parseThumbnailVtt(text, BASE)).toHaveLength(MAX_THUMBNAIL_CUES);
  });
});

function parseTimestampText(s: number): string {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}.000`;
}

describe('timestamps and lookup', () => {
  it('parse hh:mm:ss.mmm and mm:ss.mmm', () => {
    expect(parseTimestamp('01:02:03.500')).toBe(3723.5);
    expect(parseTimestamp('02:03.250')).toBe(123.25);
    expect(parseTimestamp('00:61.000')).toBeNaN();
    expect(parseTimestamp('x')).toBeNaN();
  });

  it('find the tile for a time', () => {
    const cues = parseThumbnailVtt(INDEX, BASE);
    expect(thumbnailAt(cues, 0)?.x).toBe(0);
    expect(thumbnailAt(cues, 4.99)?.x).toBe(0);
    expect(thumbnailAt(cues, 5)?.x).toBe(160);
    // A gap between cues: nothing.
    expect(thumbnailAt(cues, 30)).toBeNull();
    expect(thumbnailAt(cues, 61)?.y).toBe(90);
    expect(thumbnailAt(cues, 99999)).toBeNull();
    expect(thumbnailAt([], 1)).toBeNull();
    expect(thumbnailAt(cues, -1)).toBeNull();
  });
});
