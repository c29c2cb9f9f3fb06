import { fireEvent, render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';
import { captionClasses, TrackMenus, type TrackMenusProps } from './TrackMenus';

function props(over: Partial<TrackMenusProps> = {}): TrackMenusProps {
  return {
    audioTracks: [
      { name: 'English', lang: 'en', default: true, channels: '2' },
      { name: 'Deutsch', lang: 'de', default: false, channels: '6' },
    ],
    audioTrack: 0,
    onAudio: vi.fn(),
    subtitleTracks: [
      { name: 'English', lang: 'en', default: true },
      { name: 'French', lang: 'fr', default: false, forced: true },
    ],
    subtitleTrack: -1,
    onSubtitle: vi.fn(),
    style: { subtitle_size: 'm', subtitle_background: true },
    onStyle: vi.fn(),
    onSave: vi.fn(),
    ...over,
  };
}

describe('TrackMenus', () => {
  it('lists audio tracks in a listbox chosen with the keyboard', async () => {
    const user = userEvent.setup();
    const p = props();
    render(<TrackMenus {...p} />);
    const button = screen.getByRole('button', { name: 'Audio: English · Stereo' });
    expect(button.getAttribute('aria-haspopup')).toBe('listbox');
    expect(button.getAttribute('aria-expanded')).toBe('false');
    button.focus();
    await user.keyboard('{Enter}');
    const list = screen.getByRole('listbox', { name: 'Audio' });
    expect(document.activeElement).toBe(list);
    expect(button.getAttribute('aria-expanded')).toBe('true');
    const options = within(list).getAllByRole('option');
    expect(options.map((o) => o.textContent)).toEqual(['English · Stereo', 'Deutsch (German) · 5.1']);
    expect(options[0]!.getAttribute('aria-selected')).toBe('true');
    await user.keyboard('{ArrowDown}{Enter}');
    expect(p.onAudio).toHaveBeenCalledWith(1);
    expect(screen.queryByRole('listbox')).toBeNull();
    expect(document.activeElement).toBe(button);
  });

  it('offers Off and flags forced subtitles; Escape closes without choosing', async () => {
    const user = userEvent.setup();
    const p = props();
    render(<TrackMenus {...p} />);
    await user.click(screen.getByRole('button', { name: 'Subtitles: Off' }));
    expect(within(screen.getByRole('listbox')).getAllByRole('option').map((o) => o.textContent)).toEqual(['Off', 'English', 'French (forced)']);
    await user.keyboard('{End}{Escape}');
    expect(p.onSubtitle).not.toHaveBeenCalled();
    await user.click(screen.getByRole('button', { name: 'Subtitles: Off' }));
    await user.click(within(screen.getByRole('listbox')).getByRole('option', { name: 'English' }));
    expect(p.onSubtitle).toHaveBeenCalledWith(0);
  });

  it('changes caption style and saves', () => {
    const p = props();
    render(<TrackMenus {...p} />);
    fireEvent.change(screen.getByLabelText('Caption size'), { target: { value: 'xl' } });
    expect(p.onStyle).toHaveBeenCalledWith({ subtitle_size: 'xl', subtitle_background: true });
    fireEvent.click(screen.getByLabelText('Caption background'));
    expect(p.onStyle).toHaveBeenCalledWith({ subtitle_size: 'm', subtitle_background: false });
    fireEvent.click(screen.getByRole('button', { name: 'Save as my default' }));
    expect(p.onSave).toHaveBeenCalled();
    expect(captionClasses({ subtitle_size: 'xl', subtitle_background: false })).toBe('cues-xl cues-outline');
  });

  it('shows nothing for a movie with one audio and no subtitles', () => {
    const { container } = render(<TrackMenus {...props({ audioTracks: [{ name: 'a', default: true }], subtitleTracks: [] })} />);
    expect(container.querySelectorAll('button')).toHaveLength(0);
  });
});
