import { Link, NavLink, Outlet } from 'react-router-dom';
import { useSession } from '../hooks/useSession';

/** The frame around every screen: brand, navigation for signed-out visitors, content. */
export function Layout() {
  const signedIn = useSession() !== null;
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
        {!signedIn && (
          <nav aria-label="Account">
            <NavLink to="/login">Sign in</NavLink>
            <NavLink to="/register">Create account</NavLink>
          </nav>
        )}
      </header>
      <main id="main">
        <Outlet />
      </main>
    </>
  );
}
