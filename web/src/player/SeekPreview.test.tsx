import { fireEvent, render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { SeekPreview } from './SeekPreview';
import type { Thumbnail } from './thumbnails';

const tile = (start: number, x: number): Thumbnail => ({ start, end: start + 10, url: 'http://n/hls/s.jpg?token=t', x, y: 0, w: 160, h: 90 });

function hover(input: HTMLElement, clientX: number) {
  // jsdom lays nothing out: the bar is 1000 px wide from x = 0.
  input.getBoundingClientRect = () => ({ left: 0, width: 1000, top: 0, height: 10, right: 1000, bottom: 10, x: 0, y: 0, toJSON: () => ({}) });
  const e = new MouseEvent('pointermove', { bubbles: true, clientX });
  fireEvent(input, e);
}

describe('SeekPreview', () => {
  it('shows the tile and time for the hovered position, and hides it on leave', () => {
    render(<SeekPreview thumbnails={[tile(0, 0), tile(10, 160), tile(20, 320)]} max={30} min={0} value={0} onChange={() => undefined} aria-label="Seek" />);
    const input = screen.getByRole('slider', { name: 'Seek' });
    hover(input, 500); // 15 s
    const thumb = screen.getByTestId('seek-thumb');
    expect(thumb.getAttribute('data-url')).toBe('http://n/hls/s.jpg?token=t');
    expect(thumb.style.backgroundPosition).toBe('-160px 0px');
    expect(thumb.style.width).toBe('160px');
    expect(screen.getByTestId('seek-preview').textContent).toBe('0:15');
    hover(input, 900); // 27 s
    expect(screen.getByTestId('seek-thumb').style.backgroundPosition).toBe('-320px 0px');
    fireEvent.pointerLeave(input);
    expect(screen.queryByTestId('seek-preview')).toBeNull();
  });

  it('without thumbnails shows only the time', () => {
    render(<SeekPreview thumbnails={[]} max={100} min={0} value={0} onChange={() => undefined} aria-label="Seek" />);
    hover(screen.getByRole('slider', { name: 'Seek' }), 250);
    expect(screen.queryByTestId('seek-thumb')).toBeNull();
    expect(screen.getByTestId('seek-preview').textContent).toBe('0:25');
  });
});
