/**
 * Where sign-in happens: not on this site. `/auth/login?return=<path>` is the node
 * gateway's start of the OAuth code flow (docs/signin.md); it sends the browser to the
 * tracker's own pages (sign-in, registration, password reset, consent) and brings it
 * back to `<path>` signed in. It must be a full-page navigation, never a fetch or a
 * client-side route.
 */

/** The gateway's sign-in start. */
export const SIGN_IN_PATH = '/auth/login';
/** The gateway's redirect to the account pages on the tracker's own origin. */
export const ACCOUNT_URL = '/auth/account';

/**
 * `path` if it is a same-origin relative path the viewer may come back to, else `/`.
 * Not `//host` or `/\host` (another origin), and not the sign-in routes themselves
 * (coming back to them would start over).
 */
export function safeReturnPath(path: string | null | undefined): string {
  if (!path || !path.startsWith('/') || path.startsWith('//') || path.startsWith('/\\')) return '/';
  if (/[\u0000-\u001f\u007f]/.test(path)) return '/';
  const pathname = path.split(/[?#]/, 1)[0] ?? '/';
  if (pathname === '/auth' || pathname.startsWith('/auth/')) return '/';
  if (['/login', '/register', '/verify', '/forgot-password', '/reset-password'].includes(pathname.replace(/\/+$/, ''))) {
    return '/';
  }
  return path;
}

/** The URL that signs in and comes back to `returnPath`. */
export function signInUrl(returnPath: string): string {
  return `${SIGN_IN_PATH}?return=${encodeURIComponent(safeReturnPath(returnPath))}`;
}

/** Full-page navigation (an object so tests can replace it: jsdom cannot navigate). */
export const browserNavigation = {
  assign(url: string): void {
    window.location.assign(url);
  },
};

/** Leave the app for sign-in, coming back to `returnPath` afterwards. */
export function goToSignIn(returnPath: string): void {
  browserNavigation.assign(signInUrl(returnPath));
}
