import { NavLink } from 'react-router-dom';
import { useSession } from '../../hooks/useSession';

/** The operator section's own navigation: this node, its jobs, and (admins) the network. */
export function ConsoleNav() {
  const session = useSession();
  const admin = session?.user?.role === 'admin';
  return (
    <nav aria-label="Console" className="console-nav">
      <NavLink to="/console" end>
        Node
      </NavLink>
      <NavLink to="/console/jobs">Jobs</NavLink>
      {admin && (
        // The network console lives on the tracker's origin (admins' tracker session).
        <a href="/auth/network" data-testid="console-network-link">
          Network
        </a>
      )}
    </nav>
  );
}

/** What a refused viewer sees (403 from the node). */
export function NotOperator() {
  return (
    <div className="empty" data-testid="not-operator">
      This node's console is for its operators and the network's admins. An operator adds an
      account on the node's machine with <code>reelnet-node operator add EMAIL</code>.
    </div>
  );
}
