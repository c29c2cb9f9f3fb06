/** The viewer's playback preferences inside a player (the player page and the watch-party room). */
import { useCallback, useRef, useState } from 'react';
import { putPreferences } from '../api/preferences';
import type { Preferences } from '../api/types';
import { errorMessage } from '../hooks/useAsync';
import type { CaptionStyle } from './TrackMenus';

/**
 * The viewer's preferences in a player: read when the tracks arrive, the caption style, and
 * "Save as my default" (`PUT /me/preferences`). Shared with the watch-party room.
 */
export function usePlayerPreferences(initial: Preferences) {
  const prefsRef = useRef(initial);
  const [style, setStyle] = useState<CaptionStyle>({
    subtitle_size: initial.subtitle_size,
    subtitle_background: initial.subtitle_background,
  });
  const [saveStatus, setSaveStatus] = useState<string | null>(null);
  const store = useCallback(async (next: Preferences) => {
    try {
      prefsRef.current = await putPreferences(next);
      setSaveStatus('Saved');
    } catch (err) {
      setSaveStatus(errorMessage(err, 'Could not save your preferences.'));
    }
  }, []);
  const changeStyle = useCallback(
    (next: CaptionStyle) => {
      setStyle(next);
      void store({ ...prefsRef.current, ...next });
    },
    [store],
  );
  return { prefsRef, style, changeStyle, store, saveStatus };
}

