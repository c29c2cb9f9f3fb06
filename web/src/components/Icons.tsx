/** Small inline SVG icons for the player controls (decorative: the buttons carry the names). */
import type { ReactNode } from 'react';

function Svg({ children }: { children: ReactNode }) {
  return (
    <svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true" focusable="false" fill="currentColor">
      {children}
    </svg>
  );
}

export const PlayIcon = () => (
  <Svg>
    <path d="M7 4.5v15l13-7.5z" />
  </Svg>
);

export const PauseIcon = () => (
  <Svg>
    <path d="M6 4.5h4v15H6zM14 4.5h4v15h-4z" />
  </Svg>
);

export const VolumeIcon = () => (
  <Svg>
    <path d="M4 9v6h4l5 4.5v-15L8 9zM16 8.2a5 5 0 0 1 0 7.6l-1.3-1.5a3 3 0 0 0 0-4.6zM18.3 5.6a8.5 8.5 0 0 1 0 12.8L17 16.9a6.5 6.5 0 0 0 0-9.8z" />
  </Svg>
);

export const MutedIcon = () => (
  <Svg>
    <path d="M4 9v6h4l5 4.5v-15L8 9zM15.6 9.1l1.4-1.4 2.3 2.3 2.3-2.3 1.4 1.4-2.3 2.3 2.3 2.3-1.4 1.4-2.3-2.3-2.3 2.3-1.4-1.4 2.3-2.3z" />
  </Svg>
);

export const FullscreenIcon = () => (
  <Svg>
    <path d="M4 4h6v2H6v4H4zM14 4h6v6h-2V6h-4zM4 14h2v4h4v2H4zM18 14h2v6h-6v-2h4z" />
  </Svg>
);
