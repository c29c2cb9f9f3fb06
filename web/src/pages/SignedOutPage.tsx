import { Navigate } from 'react-router-dom';
import { SignedOut } from '../components/RequireAuth';
import { useSessionStatus } from '../hooks/useSession';

/** `/signed-out`: where signing out lands (signed in again meanwhile: home). */
export default function SignedOutPage() {
  if (useSessionStatus() === 'signed-in') return <Navigate to="/" replace />;
  return <SignedOut returnPath="/" />;
}
