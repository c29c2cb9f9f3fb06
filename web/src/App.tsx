import { Route, Routes } from 'react-router-dom';
import { Layout } from './components/Layout';
import { RequireAuth } from './components/RequireAuth';
import AccountPage from './pages/AccountPage';
import HistoryPage from './pages/HistoryPage';
import HomePage from './pages/HomePage';
import MoviePage from './pages/MoviePage';
import NotFoundPage from './pages/NotFoundPage';
import PlayerPage from './pages/PlayerPage';
import RequestsPage from './pages/RequestsPage';
import RoomPage from './pages/RoomPage';
import SignedOutPage from './pages/SignedOutPage';
import SignInRedirectPage from './pages/SignInRedirectPage';
import WatchLaterPage from './pages/WatchLaterPage';
import JobsPage from './pages/console/JobsPage';
import NetworkPage from './pages/console/NetworkPage';
import NodePage from './pages/console/NodePage';

/**
 * The app's routes. The router itself is provided by `main.tsx` (or a test's `MemoryRouter`).
 * This site takes no credentials (docs/signin.md): `/login` and the old account-form
 * routes only send the browser on to sign in at the tracker, through the gateway's
 * `/auth/login`.
 */
export default function App() {
  return (
    <Routes>
      {/* The network console runs on the tracker's origin (its own frame, its session cookie). */}
      <Route path="console/network" element={<NetworkPage />} />
      <Route element={<Layout />}>
        <Route path="console" element={<RequireAuth><NodePage /></RequireAuth>} />
        <Route path="console/jobs" element={<RequireAuth><JobsPage /></RequireAuth>} />
        <Route index element={<RequireAuth><HomePage /></RequireAuth>} />
        <Route path="movie/:id" element={<RequireAuth><MoviePage /></RequireAuth>} />
        <Route path="watch/:id" element={<RequireAuth><PlayerPage /></RequireAuth>} />
        <Route path="room/:id" element={<RequireAuth><RoomPage /></RequireAuth>} />
        <Route path="watch-later" element={<RequireAuth><WatchLaterPage /></RequireAuth>} />
        <Route path="history" element={<RequireAuth><HistoryPage /></RequireAuth>} />
        <Route path="requests" element={<RequireAuth><RequestsPage /></RequireAuth>} />
        <Route path="account" element={<RequireAuth><AccountPage /></RequireAuth>} />
        <Route path="login" element={<SignInRedirectPage keepReturn />} />
        <Route path="register" element={<SignInRedirectPage />} />
        <Route path="verify" element={<SignInRedirectPage />} />
        <Route path="forgot-password" element={<SignInRedirectPage />} />
        <Route path="reset-password" element={<SignInRedirectPage />} />
        <Route path="signed-out" element={<SignedOutPage />} />
        <Route path="*" element={<NotFoundPage />} />
      </Route>
    </Routes>
  );
}
