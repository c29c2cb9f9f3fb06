import type { ReactNode } from 'react';
import { signInUrl } from '../signin';

/**
 * A plain link (full-page navigation, not a client-side route) to the gateway's
 * `/auth/login`, which goes on to the tracker's sign-in page and comes back to `returnPath`.
 */
export function SignInLink({
  returnPath,
  children,
  className,
  testId,
}: {
  returnPath: string;
  children: ReactNode;
  className?: string;
  testId?: string;
}) {
  return (
    <a href={signInUrl(returnPath)} className={className} data-testid={testId}>
      {children}
    </a>
  );
}
