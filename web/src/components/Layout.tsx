import { useEffect, useRef } from 'react';
import { Link, NavLink, Outlet, useLocation } from 'react-router-dom';
import { useSession } from '../hooks/useSession';
import { useSignOut } from '../hooks/useSignOut';

/** The frame around every screen: brand, navigation, content. */
export function Layout() {
  const signedIn = useSession() !== null;
  const { signOut, signingOut } = useSignOut();
  const { pathname } = useLocation();
  const mainRef = useRef<HTMLElement>(null);
  const firstPath = useRef(pathname);

  // After navigating to another screen, move focus to the content so keyboard and
  // screen-reader users start there (not on the link they followed, now gone).
  useEffect(() => {
    if (pathname === firstPath.current) return;
    firstPath.current = '';
    const main = mainRef.current;
    if (main && !main.contains(document.activeElement)) main.focus({ preventScroll: true });
  }, [pathname]);

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="site-header">
        <Link to="/" className="brand">
          <img src="/favicon.svg" alt="" width="28" height="28" />
          reelnet
        </Link>
        {signedIn ? (
          <nav aria-label="Main" className="main-nav">
            <NavLink to="/" end>
              Home
            </NavLink>
            <NavLink to="/watch-later" data-testid="nav-watch-later">
              Watch later
            </NavLink>
            <NavLink to="/history">History</NavLink>
            <NavLink to="/requests">Requests</NavLink>
            <NavLink to="/account">Account</NavLink>
            <button type="button" className="link-button" onClick={signOut} disabled={signingOut}>
              {signingOut ? 'Signing out…' : 'Sign out'}
            </button>
          </nav>
        ) : (
          <nav aria-label="Account">
            <NavLink to="/login">Sign in</NavLink>
            <NavLink to="/register">Create account</NavLink>
          </nav>
        )}
      </header>
      <main id="main" tabIndex={-1} ref={mainRef}>
        <Outlet />
      </main>
    </>
  );
}
