/**
 * Small SVG pictures for the console: a line chart of a series (the last hour of a
 * metric), a stacked bar (disk use against the quota) and a ring (a ratio). Plain SVG, no
 * chart library; each has a text alternative for screen readers.
 */

export interface Series {
  label: string;
  values: (number | null)[];
  className: string;
}

/** Lines of one or more series over the same time axis (nulls are gaps). */
export function LineChart({
  title,
  series,
  unit,
  height = 80,
}: {
  title: string;
  series: Series[];
  unit: string;
  height?: number;
}) {
  const width = 300;
  const n = Math.max(0, ...series.map((s) => s.values.length));
  const max = Math.max(1e-9, ...series.flatMap((s) => s.values.filter((v): v is number => v !== null)));
  const x = (i: number) => (n <= 1 ? width : (i / (n - 1)) * width);
  const y = (v: number) => height - 4 - (v / max) * (height - 8);
  const last = series.map((s) => [...s.values].reverse().find((v) => v !== null) ?? null);
  const summary = series
    .map((s, i) => `${s.label} ${last[i] === null ? 'none' : `${formatNumber(last[i]!)} ${unit}`}`)
    .join(', ');
  return (
    <figure className="chart" data-testid={`chart-${title}`}>
      <figcaption>
        {title} <span className="chart-max">max {formatNumber(max)} {unit}</span>
      </figcaption>
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`${title}: now ${summary}`} preserveAspectRatio="none">
        <line x1="0" y1={height - 4} x2={width} y2={height - 4} className="chart-axis" />
        {series.map((s) => {
          const parts: string[] = [];
          let pen = false;
          s.values.forEach((v, i) => {
            if (v === null) {
              pen = false;
              return;
            }
            parts.push(`${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`);
            pen = true;
          });
          return <path key={s.label} d={parts.join(' ')} className={`chart-line ${s.className}`} fill="none" />;
        })}
      </svg>
      <ul className="chart-legend">
        {series.map((s, i) => (
          <li key={s.label} className={s.className}>
            {s.label}: {last[i] === null ? '—' : `${formatNumber(last[i]!)} ${unit}`}
          </li>
        ))}
      </ul>
    </figure>
  );
}

export interface Part {
  label: string;
  value: number;
  className: string;
}

/** Parts of a whole as one horizontal bar (disk use against the quota). */
export function StackedBar({ title, parts, total }: { title: string; parts: Part[]; total: number }) {
  const sum = parts.reduce((a, p) => a + p.value, 0);
  const whole = Math.max(total, sum, 1);
  let at = 0;
  return (
    <figure className="stacked" data-testid={`bar-${title}`}>
      <svg viewBox="0 0 100 10" role="img" aria-label={`${title}: ${parts.map((p) => `${p.label} ${formatBytes(p.value)}`).join(', ')} of ${formatBytes(total)}`} preserveAspectRatio="none">
        <rect x="0" y="0" width="100" height="10" className="stacked-bg" />
        {parts.map((p) => {
          const w = (p.value / whole) * 100;
          const r = <rect key={p.label} x={at} y="0" width={w} height="10" className={p.className} />;
          at += w;
          return r;
        })}
      </svg>
      <ul className="chart-legend">
        {parts.map((p) => (
          <li key={p.label} className={p.className}>
            {p.label}: {formatBytes(p.value)}
          </li>
        ))}
        <li>quota: {formatBytes(total)}</li>
      </ul>
    </figure>
  );
}

/** A ratio as a ring with its percentage in the middle. */
export function Ring({ label, fraction }: { label: string; fraction: number }) {
  const f = Math.min(1, Math.max(0, fraction));
  const r = 16;
  const c = 2 * Math.PI * r;
  return (
    <svg viewBox="0 0 40 40" className="ring" role="img" aria-label={`${label}: ${Math.round(f * 100)}%`}>
      <circle cx="20" cy="20" r={r} className="ring-bg" fill="none" strokeWidth="5" />
      <circle
        cx="20"
        cy="20"
        r={r}
        className="ring-fill"
        fill="none"
        strokeWidth="5"
        strokeDasharray={`${(f * c).toFixed(2)} ${c.toFixed(2)}`}
        transform="rotate(-90 20 20)"
      />
      <text x="20" y="23" textAnchor="middle" className="ring-text">
        {Math.round(f * 100)}%
      </text>
    </svg>
  );
}

export function formatNumber(v: number): string {
  if (Math.abs(v) >= 100) return Math.round(v).toString();
  return String(Number(v.toFixed(Math.abs(v) >= 10 ? 1 : 2)));
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** A unix time as a short local date and time. */
export function formatTime(unix: number | null | undefined): string {
  if (!unix) return '—';
  return new Date(unix * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** Seconds as `1 h 2 min`, `3 min 4 s` or `5 s`. */
export function formatDuration(secs: number | null | undefined): string {
  if (secs === null || secs === undefined || !Number.isFinite(secs)) return '—';
  const s = Math.max(0, Math.round(secs));
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${s} s`;
}
