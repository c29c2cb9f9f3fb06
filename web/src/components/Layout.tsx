import { useEffect, useRef, useState } from 'react';
import * as consoleApi from '../api/console';
import { useSession } from '../hooks/useSession';
import { Link, NavLink, Outlet, useLocation } from 'react-router-dom';
import { useSessionStatus } from '../hooks/useSession';
import { useSignOut } from '../hooks/useSignOut';
import { SignInLink } from './SignInLink';

/** The frame around every screen: brand, navigation, content. */
export function Layout() {
  const status = useSessionStatus();
  const signedIn = status === 'signed-in';
  const userId = useSession()?.user?.id ?? null;
  // The operator menu: only for this node's operators and network admins (the node says).
  const [operator, setOperator] = useState(false);
  useEffect(() => {
    setOperator(false);
    if (!signedIn || userId === null) return;
    const controller = new AbortController();
    consoleApi.access(controller.signal).then(
      (a) => {
        if (!controller.signal.aborted) setOperator(a !== null);
      },
      () => {},
    );
    return () => controller.abort();
  }, [signedIn, userId]);
  const { signOut, signingOut } = useSignOut();
  const { pathname, search } = useLocation();
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
            {operator && (
              <NavLink to="/console" data-testid="nav-console">
                Console
              </NavLink>
            )}
            <button type="button" className="link-button" onClick={signOut} disabled={signingOut}>
              {signingOut ? 'Signing out…' : 'Sign out'}
            </button>
          </nav>
        ) : status === 'unknown' ? null : (
          <nav aria-label="Account">
            {/* A full-page trip to the tracker's sign-in (which also creates accounts) and back. */}
            <SignInLink returnPath={pathname === '/signed-out' ? '/' : pathname + search} testId="nav-sign-in">
              Sign in
            </SignInLink>
          </nav>
        )}
      </header>
      <main id="main" tabIndex={-1} ref={mainRef}>
        <Outlet />
      </main>
    </>
  );
}
