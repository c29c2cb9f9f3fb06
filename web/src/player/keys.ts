/**
 * The player's keyboard shortcuts: space (or k) play/pause, ←/→ seek 10 s,
 * ↑/↓ volume, f fullscreen, m mute, c captions on/off.
 */

export const SEEK_STEP_S = 10;
export const VOLUME_STEP = 0.1;

export interface PlayerActions {
  togglePlay(): void;
  seekBy(seconds: number): void;
  changeVolume(delta: number): void;
  toggleMute(): void;
  toggleFullscreen(): void;
  /** Captions off, or back on in the language last shown (absent: `c` is not a shortcut). */
  toggleCaptions?(): void;
}

/**
 * Apply the shortcut for `e`, if any; returns true when it was one (and the
 * caller should `preventDefault`). Keys typed into form controls and
 * Space/Enter on buttons and links keep their usual meaning.
 */
export function handlePlayerKey(e: KeyboardEvent, actions: PlayerActions): boolean {
  if (e.altKey || e.ctrlKey || e.metaKey) return false;
  const target = e.target instanceof HTMLElement ? e.target : null;
  const tag = target?.tagName ?? '';
  const isRange = tag === 'INPUT' && (target as HTMLInputElement).type === 'range';
  if ((tag === 'INPUT' && !isRange) || tag === 'SELECT' || tag === 'TEXTAREA' || target?.isContentEditable) return false;
  if ((tag === 'BUTTON' || tag === 'A') && (e.key === ' ' || e.key === 'Enter')) return false;
  // A focused slider moves with the arrow keys itself.
  if (isRange && e.key.startsWith('Arrow')) return false;

  switch (e.key) {
    case ' ':
    case 'k':
    case 'K':
      actions.togglePlay();
      return true;
    case 'ArrowLeft':
      actions.seekBy(-SEEK_STEP_S);
      return true;
    case 'ArrowRight':
      actions.seekBy(SEEK_STEP_S);
      return true;
    case 'ArrowUp':
      actions.changeVolume(VOLUME_STEP);
      return true;
    case 'ArrowDown':
      actions.changeVolume(-VOLUME_STEP);
      return true;
    case 'f':
    case 'F':
      actions.toggleFullscreen();
      return true;
    case 'm':
    case 'M':
      actions.toggleMute();
      return true;
    case 'c':
    case 'C':
      if (!actions.toggleCaptions) return false;
      actions.toggleCaptions();
      return true;
    default:
      return false;
  }
}
