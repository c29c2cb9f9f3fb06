/**
 * The player's audio and subtitle menus and caption style: a button per menu opening a
 * listbox (keyboard: ↑/↓/Home/End move, Enter/Space choose, Escape closes), caption size and
 * background, and "Save as my default" (stores what is playing as the viewer's preferences,
 * `PUT /me/preferences`). Shared by the player page and the watch-party room; the choices are
 * this viewer's own and never sent to a room.
 */
import { useEffect, useId, useRef, useState, type KeyboardEvent } from 'react';
import type { Preferences } from '../api/types';
import { audioTrackLabel, subtitleTrackLabel, type TrackInfo } from './tracks';

interface Option {
  value: number;
  label: string;
}

/** A button that opens a single-choice listbox. */
function MenuButton({
  label,
  current,
  options,
  selected,
  onSelect,
  testId,
}: {
  label: string;
  current: string;
  options: Option[];
  selected: number;
  onSelect: (value: number) => void;
  testId: string;
}) {
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(0);
  const id = useId();
  const buttonRef = useRef<HTMLButtonElement>(null);
  const listRef = useRef<HTMLUListElement>(null);

  useEffect(() => {
    if (open) listRef.current?.focus();
  }, [open]);

  const openMenu = () => {
    const i = options.findIndex((o) => o.value === selected);
    setActive(i >= 0 ? i : 0);
    setOpen(true);
  };
  const close = () => {
    setOpen(false);
    buttonRef.current?.focus();
  };
  const choose = (i: number) => {
    const o = options[i];
    if (o) onSelect(o.value);
    close();
  };
  const onKey = (e: KeyboardEvent<HTMLUListElement>) => {
    const last = options.length - 1;
    let handled = true;
    switch (e.key) {
      case 'ArrowDown':
        setActive((a) => Math.min(last, a + 1));
        break;
      case 'ArrowUp':
        setActive((a) => Math.max(0, a - 1));
        break;
      case 'Home':
        setActive(0);
        break;
      case 'End':
        setActive(last);
        break;
      case 'Enter':
      case ' ':
        choose(active);
        break;
      case 'Escape':
        close();
        break;
      case 'Tab':
        setOpen(false);
        handled = false;
        break;
      default:
        handled = false;
    }
    if (handled) {
      // The player's own shortcuts (window listener) skip handled keys.
      e.preventDefault();
      e.stopPropagation();
    }
  };

  return (
    <div className="player-menu">
      <button
        ref={buttonRef}
        type="button"
        aria-haspopup="listbox"
        aria-expanded={open}
        aria-controls={open ? `${id}-list` : undefined}
        aria-label={`${label}: ${current}`}
        disabled={options.length === 0}
        onClick={() => (open ? close() : openMenu())}
        onKeyDown={(e) => {
          if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
            e.preventDefault();
            e.stopPropagation();
            openMenu();
          }
        }}
        data-testid={`${testId}-button`}
      >
        {label}: {current}
      </button>
      {open && (
        <ul
          ref={listRef}
          id={`${id}-list`}
          role="listbox"
          aria-label={label}
          tabIndex={-1}
          aria-activedescendant={`${id}-opt-${active}`}
          onKeyDown={onKey}
          onBlur={(e) => {
            if (!e.currentTarget.contains(e.relatedTarget as Node | null) && e.relatedTarget !== buttonRef.current) setOpen(false);
          }}
          className="player-menu-list"
          data-testid={`${testId}-list`}
        >
          {options.map((o, i) => (
            <li
              key={o.value}
              id={`${id}-opt-${i}`}
              role="option"
              aria-selected={o.value === selected}
              className={i === active ? 'active' : undefined}
              onMouseDown={(e) => e.preventDefault()}
              onClick={() => choose(i)}
              data-value={o.value}
            >
              {o.label}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export type CaptionStyle = Pick<Preferences, 'subtitle_size' | 'subtitle_background'>;

/** The CSS classes that style a <video>'s captions (`::cue`, see styles.css). */
export function captionClasses(style: CaptionStyle): string {
  return `cues-${style.subtitle_size} ${style.subtitle_background ? 'cues-box' : 'cues-outline'}`;
}

const SIZES: Array<{ value: Preferences['subtitle_size']; label: string }> = [
  { value: 's', label: 'Small' },
  { value: 'm', label: 'Medium' },
  { value: 'l', label: 'Large' },
  { value: 'xl', label: 'Extra large' },
];

export interface TrackMenusProps {
  audioTracks: TrackInfo[];
  audioTrack: number;
  onAudio: (index: number) => void;
  subtitleTracks: TrackInfo[];
  subtitleTrack: number;
  onSubtitle: (index: number) => void;
  style: CaptionStyle;
  onStyle: (style: CaptionStyle) => void;
  /** Store what plays now as the viewer's preferences; absent: no save button. */
  onSave?: () => void;
  /** Shown beside the save button (`Saved`, an error). */
  saveStatus?: string | null;
}

export function TrackMenus(p: TrackMenusProps) {
  const audioOptions = p.audioTracks.map((t, i) => ({ value: i, label: audioTrackLabel(t) }));
  const subtitleOptions = [{ value: -1, label: 'Off' }, ...p.subtitleTracks.map((t, i) => ({ value: i, label: subtitleTrackLabel(t) }))];
  const audioNow = audioOptions.find((o) => o.value === p.audioTrack)?.label ?? (audioOptions.length ? '…' : 'Default');
  const subtitleNow = subtitleOptions.find((o) => o.value === p.subtitleTrack)?.label ?? 'Off';
  return (
    <div className="player-tracks" role="group" aria-label="Audio and subtitles">
      {audioOptions.length > 1 && (
        <MenuButton label="Audio" current={audioNow} options={audioOptions} selected={p.audioTrack} onSelect={p.onAudio} testId="audio-menu" />
      )}
      {p.subtitleTracks.length > 0 && (
        <>
          <MenuButton
            label="Subtitles"
            current={subtitleNow}
            options={subtitleOptions}
            selected={p.subtitleTrack}
            onSelect={p.onSubtitle}
            testId="subtitle-menu"
          />
          <label className="player-caption-size">
            <span>Caption size</span>
            <select
              value={p.style.subtitle_size}
              onChange={(e) => p.onStyle({ ...p.style, subtitle_size: e.target.value as Preferences['subtitle_size'] })}
              data-testid="caption-size"
            >
              {SIZES.map((s) => (
                <option key={s.value} value={s.value}>
                  {s.label}
                </option>
              ))}
            </select>
          </label>
          <label className="player-caption-bg">
            <input
              type="checkbox"
              checked={p.style.subtitle_background}
              onChange={(e) => p.onStyle({ ...p.style, subtitle_background: e.target.checked })}
              data-testid="caption-background"
            />{' '}
            Caption background
          </label>
        </>
      )}
      {p.onSave && (audioOptions.length > 1 || p.subtitleTracks.length > 0) && (
        <>
          <button type="button" onClick={p.onSave} data-testid="save-preferences">
            Save as my default
          </button>
          {p.saveStatus && (
            <span role="status" className="hint">
              {p.saveStatus}
            </span>
          )}
        </>
      )}
    </div>
  );
}
