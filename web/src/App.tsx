import { Route, Routes } from 'react-router-dom';
import { Layout } from './components/Layout';
import { RequireAuth } from './components/RequireAuth';
import AccountPage from './pages/AccountPage';
import ForgotPasswordPage from './pages/ForgotPasswordPage';
import HistoryPage from './pages/HistoryPage';
import HomePage from './pages/HomePage';
import LoginPage from './pages/LoginPage';
import MoviePage from './pages/MoviePage';
import NotFoundPage from './pages/NotFoundPage';
import PlayerPage from './pages/PlayerPage';
import RegisterPage from './pages/RegisterPage';
import RequestsPage from './pages/RequestsPage';
import ResetPasswordPage from './pages/ResetPasswordPage';
import RoomPage from './pages/RoomPage';
import VerifyPage from './pages/VerifyPage';
import WatchLaterPage from './pages/WatchLaterPage';

/**
 * The app's routes. The router itself is provided by `main.tsx` (or a test's `MemoryRouter`).
 * `/verify` and `/reset-password` are the targets of the tracker's emails
 * (`<web_url>/verify?token=…`, `<web_url>/reset-password?token=…`).
 */
export default function App() {
  return (
    <Routes>
      <Route element={<Layout />}>
        <Route index element={<RequireAuth><HomePage /></RequireAuth>} />
        <Route path="movie/:id" element={<RequireAuth><MoviePage /></RequireAuth>} />
        <Route path="watch/:id" element={<RequireAuth><PlayerPage /></RequireAuth>} />
        <Route path="room/:id" element={<RequireAuth><RoomPage /></RequireAuth>} />
        <Route path="watch-later" element={<RequireAuth><WatchLaterPage /></RequireAuth>} />
        <Route path="history" element={<RequireAuth><HistoryPage /></RequireAuth>} />
        <Route path="requests" element={<RequireAuth><RequestsPage /></RequireAuth>} />
        <Route path="account" element={<RequireAuth><AccountPage /></RequireAuth>} />
        <Route path="login" element={<LoginPage />} />
        <Route path="register" element={<RegisterPage />} />
        <Route path="verify" element={<VerifyPage />} />
        <Route path="forgot-password" element={<ForgotPasswordPage />} />
        <Route path="reset-password" element={<ResetPasswordPage />} />
        <Route path="*" element={<NotFoundPage />} />
      </Route>
    </Routes>
  );
}
