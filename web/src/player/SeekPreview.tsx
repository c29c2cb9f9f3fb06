/**
 * The seek bar with thumbnails: a range input wrapped so that hovering or dragging over it
 * shows the sprite tile for that time (from the thumbnail index, `player/thumbnails.ts`) and
 * the time above the pointer. Without thumbnails it is the plain seek bar.
 */
import { useState, type InputHTMLAttributes, type PointerEvent } from 'react';
import { formatTime } from '../playback';
import { thumbnailAt, type Thumbnail } from './thumbnails';

interface Hover {
  time: number;
  /** Pointer position from the bar's left edge, px. */
  x: number;
  width: number;
}

export function SeekPreview({
  thumbnails,
  max,
  className,
  ...input
}: { thumbnails: readonly Thumbnail[]; max: number } & InputHTMLAttributes<HTMLInputElement>) {
  const [hover, setHover] = useState<Hover | null>(null);
  const [dragging, setDragging] = useState(false);
  const track = (e: PointerEvent<HTMLInputElement>) => {
    const rect = e.currentTarget.getBoundingClientRect();
    if (rect.width <= 0) return;
    const x = Math.max(0, Math.min(rect.width, e.clientX - rect.left));
    setHover({ time: (x / rect.width) * max, x, width: rect.width });
  };
  const cue = hover ? thumbnailAt(thumbnails, hover.time) : null;
  const boxWidth = cue?.w ?? 64;
  const left = hover ? Math.max(0, Math.min(hover.width - boxWidth, hover.x - boxWidth / 2)) : 0;
  return (
    <div className={`player-seek-wrap ${className ?? ''}`}>
      {hover && (
        <div className="seek-preview" style={{ left: `${left}px` }} aria-hidden="true" data-testid="seek-preview">
          {cue && (
            <div
              className="seek-thumb"
              data-testid="seek-thumb"
              data-url={cue.url}
              style={{
                width: `${cue.w}px`,
                height: `${cue.h}px`,
                backgroundImage: `url("${cue.url.replace(/"/g, '%22')}")`,
                backgroundPosition: `-${cue.x}px -${cue.y}px`,
              }}
            />
          )}
          <span className="seek-time">{formatTime(hover.time)}</span>
        </div>
      )}
      <input
        {...input}
        type="range"
        max={max}
        className="player-seek"
        onPointerMove={track}
        onPointerEnter={track}
        onPointerDown={(e) => {
          setDragging(true);
          track(e);
        }}
        onPointerUp={() => setDragging(false)}
        onPointerLeave={() => {
          if (!dragging) setHover(null);
        }}
        onBlur={() => {
          setDragging(false);
          setHover(null);
        }}
      />
    </div>
  );
}
