// Draws the app icons (the reel of public/favicon.svg) as PNGs for the web app
// manifest, with nothing but Node's zlib: `node scripts/make-icons.mjs`.
// Writes public/icons/icon-{192,512}.png (any) and icon-maskable-512.png
// (the reel inside the maskable safe zone on a full background).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const OUT = join(dirname(fileURLToPath(import.meta.url)), '..', 'public', 'icons');
const ACCENT = [0xf2, 0xb9, 0x4b];
const DARK = [0x10, 0x12, 0x16];

// The favicon's geometry in its 64x64 viewBox.
const HOLES = [
  [32, 13],
  [50.1, 26.1],
  [43.2, 47.4],
  [20.8, 47.4],
  [13.9, 26.1],
];
const TRIANGLE = [
  [27, 24.5],
  [27, 39.5],
  [40, 32],
];

function inTriangle(x, y) {
  const [[ax, ay], [bx, by], [cx, cy]] = TRIANGLE;
  const s = (px, py, qx, qy, rx, ry) => (px - rx) * (qy - ry) - (qx - rx) * (py - ry);
  const d1 = s(x, y, ax, ay, bx, by);
  const d2 = s(x, y, bx, by, cx, cy);
  const d3 = s(x, y, cx, cy, ax, ay);
  return !((d1 < 0 || d2 < 0 || d3 < 0) && (d1 > 0 || d2 > 0 || d3 > 0));
}

/** Colour (RGBA) at a point of the 64-unit icon, or null outside the reel. */
function reel(x, y) {
  if ((x - 32) ** 2 + (y - 32) ** 2 > 30 * 30) return null;
  if (HOLES.some(([hx, hy]) => (x - hx) ** 2 + (y - hy) ** 2 <= 6.5 * 6.5) || inTriangle(x, y)) return DARK;
  return ACCENT;
}

function draw(size, { maskable }) {
  const SS = 4; // supersampling per axis
  const rgba = Buffer.alloc(size * size * 4);
  // Maskable: the reel fits the 80% safe-zone circle on a full dark background.
  const scale = maskable ? 64 / (size * 0.78) : 64 / size;
  const offset = maskable ? 32 - (size / 2) * scale : 0;
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let r = 0, g = 0, b = 0, a = 0;
      for (let sy = 0; sy < SS; sy++) {
        for (let sx = 0; sx < SS; sx++) {
          const x = (px + (sx + 0.5) / SS) * scale + offset;
          const y = (py + (sy + 0.5) / SS) * scale + offset;
          const c = reel(x, y) ?? (maskable ? DARK : null);
          if (c) {
            r += c[0];
            g += c[1];
            b += c[2];
            a += 255;
          }
        }
      }
      const n = SS * SS;
      const i = (py * size + px) * 4;
      const cover = a / 255;
      rgba[i] = cover ? Math.round(r / cover) : 0;
      rgba[i + 1] = cover ? Math.round(g / cover) : 0;
      rgba[i + 2] = cover ? Math.round(b / cover) : 0;
      rgba[i + 3] = Math.round(a / n);
    }
  }
  return png(size, size, rgba);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
function png(width, height, rgba) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  const raw = Buffer.alloc((width * 4 + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width * 4 + 1)] = 0; // filter: none
    rgba.copy(raw, y * (width * 4 + 1) + 1, y * width * 4, (y + 1) * width * 4);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

mkdirSync(OUT, { recursive: true });
for (const [name, size, maskable] of [
  ['icon-192.png', 192, false],
  ['icon-512.png', 512, false],
  ['icon-maskable-512.png', 512, true],
  ['apple-touch-icon.png', 180, true],
]) {
  writeFileSync(join(OUT, name), draw(size, { maskable }));
  console.log(`wrote ${join('public/icons', name)}`);
}
