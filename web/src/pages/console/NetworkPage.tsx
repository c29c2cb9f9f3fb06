import { useEffect, useState, type FormEvent, type ReactNode } from 'react';
import * as net from '../../api/network';
import { formatTime } from '../../components/console/Charts';
import { ErrorAlert } from '../../components/ErrorAlert';
import { Empty, Failed, Loading } from '../../components/States';
import { errorMessage } from '../../hooks/useAsync';
import { usePolling, type PollState } from '../../hooks/usePolling';

/** How often the network page asks again while it is open. */
export const NETWORK_POLL_MS = 5000;

const ROLES: net.NodeRole[] = ['replica', 'ingest', 'edge'];

function short(id: string) {
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

/** Loading, refused, failed or the content of one section. */
function Section<T>({
  title,
  poll,
  children,
  testId,
}: {
  title: string;
  poll: PollState<T> & { refresh: () => void };
  children: (data: T) => ReactNode;
  testId: string;
}) {
  let body: ReactNode;
  if (poll.loading) body = <Loading label={`Loading ${title.toLowerCase()}…`} />;
  else if (!poll.data) body = <Failed message={poll.error ?? 'Could not load this.'} onRetry={poll.refresh} />;
  else body = children(poll.data);
  return (
    <section className="console-card wide" aria-labelledby={`${testId}-title`} data-testid={testId}>
      <h2 id={`${testId}-title`}>{title}</h2>
      {poll.error && poll.data && <p className="stale" role="status">Showing the last answer: {poll.error}</p>}
      {body}
    </section>
  );
}

function InviteForm({ onCreated }: { onCreated: () => void }) {
  const [roles, setRoles] = useState<net.NodeRole[]>(['replica']);
  const [created, setCreated] = useState<net.InviteCreated | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    setCopied(false);
    try {
      setCreated(await net.invite(roles));
      onCreated();
    } catch (err) {
      setError(errorMessage(err));
    }
  }
  async function copy() {
    if (!created) return;
    try {
      await navigator.clipboard.writeText(created.command);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  }
  return (
    <form className="console-form" onSubmit={submit} aria-label="Create an invite">
      <fieldset>
        <legend>Roles of the node that joins with it</legend>
        {ROLES.map((r) => (
          <label key={r} className="inline">
            <input
              type="checkbox"
              checked={roles.includes(r)}
              onChange={(e) => setRoles(e.target.checked ? [...roles, r] : roles.filter((x) => x !== r))}
            />
            {r}
          </label>
        ))}
      </fieldset>
      <button type="submit" disabled={roles.length === 0}>
        Create invite
      </button>
      <ErrorAlert message={error} />
      {created && (
        <div className="invite-created" data-testid="invite-created">
          <p>Run this on the new node's machine (the token works once, until {formatTime(created.expires_at)}):</p>
          <pre className="mono" data-testid="invite-command">{created.command}</pre>
          <p className="muted">
            Token: <code data-testid="invite-token">{created.token}</code>
          </p>
          <button type="button" onClick={copy}>
            {copied ? 'Copied' : 'Copy command'}
          </button>
        </div>
      )}
    </form>
  );
}

function MemberRow({ node, onChanged }: { node: net.NodeView; onChanged: (err?: string) => void }) {
  const [roles, setRoles] = useState<net.NodeRole[]>(node.roles);
  const rolesKey = node.roles.join(',');
  useEffect(() => setRoles(node.roles), [rolesKey]); // eslint-disable-line react-hooks/exhaustive-deps
  const changed = roles.join(',') !== rolesKey;
  async function act(f: () => Promise<unknown>) {
    try {
      await f();
      onChanged();
    } catch (err) {
      onChanged(errorMessage(err));
    }
  }
  return (
    <tr data-testid={`member-${node.node_id}`} className={node.revoked ? 'revoked' : undefined}>
      <td title={node.node_id} className="mono">
        {short(node.node_id)}
        <div className="muted">{node.origins.join(' ')}</div>
      </td>
      <td>
        {ROLES.map((r) => (
          <label key={r} className="inline">
            <input
              type="checkbox"
              aria-label={`${r} role of ${short(node.node_id)}`}
              checked={roles.includes(r)}
              disabled={node.revoked}
              onChange={(e) => setRoles(e.target.checked ? [...roles, r] : roles.filter((x) => x !== r))}
            />
            {r}
          </label>
        ))}
        {changed && (
          <button type="button" className="link-button" onClick={() => act(() => net.setRoles(node.node_id, roles))}>
            Save roles
          </button>
        )}
      </td>
      <td>{node.revoked ? `revoked ${formatTime(node.revoked_at)}` : formatTime(node.not_after)}</td>
      <td>{formatTime(node.last_seen)}</td>
      <td>{node.movies && node.movies.length > 0 ? node.movies.join(', ') : '—'}</td>
      <td>
        {!node.revoked && (
          <button
            type="button"
            className="danger"
            onClick={() => {
              if (window.confirm(`Revoke node ${short(node.node_id)}? It cannot come back.`)) {
                void act(() => net.revoke(node.node_id));
              }
            }}
          >
            Revoke
          </button>
        )}
      </td>
    </tr>
  );
}

function RepointForm({ movie, onDone }: { movie: net.MoviesView['movies'][number]; onDone: (err?: string) => void }) {
  const choices = movie.ingests.filter((i) => i.complete && i.manifest !== movie.manifest);
  const [manifest, setManifest] = useState('');
  if (choices.length === 0) return <span className="muted">no other complete source</span>;
  return (
    <form
      className="inline-form"
      onSubmit={async (e) => {
        e.preventDefault();
        try {
          await net.bind(movie.movie, manifest);
          onDone();
        } catch (err) {
          onDone(errorMessage(err));
        }
      }}
    >
      <select aria-label={`New source for ${movie.movie}`} value={manifest} onChange={(e) => setManifest(e.target.value)}>
        <option value="">Re-point to…</option>
        {choices.map((i) => (
          <option key={i.manifest} value={i.manifest}>
            {short(i.origin)} · {i.title} (#{i.seq})
          </option>
        ))}
      </select>
      <button type="submit" disabled={manifest === ''}>
        Bind
      </button>
    </form>
  );
}

/**
 * The network console (admins), on the tracker's own origin: members, invites, movie
 * bindings, requests and users, refreshed every few seconds while open.
 */
export default function NetworkPage() {
  const nodes = usePolling((s) => net.nodes(s), NETWORK_POLL_MS);
  const movies = usePolling((s) => net.movies(s), NETWORK_POLL_MS);
  const requests = usePolling((s) => net.requests(s), NETWORK_POLL_MS);
  const users = usePolling((s) => net.users(s), NETWORK_POLL_MS * 2);
  const [actionError, setActionError] = useState<string | null>(null);

  useEffect(() => {
    document.title = 'Network · reelnet';
  }, []);

  const after = (poll: { refresh: () => void }) => (err?: string) => {
    setActionError(err ?? null);
    poll.refresh();
  };

  let content: ReactNode;
  if (nodes.errorStatus === 401) {
    content = (
      <div className="empty" data-testid="network-sign-in">
        Sign in at the tracker as an admin to see the network.{' '}
        <a href="/login?next=/console/network">Sign in</a>
      </div>
    );
  } else if (nodes.errorStatus === 403) {
    content = (
      <div className="empty" data-testid="network-forbidden">
        The network console is for the network's admins.
      </div>
    );
  } else {
    content = (
      <>
        <ErrorAlert message={actionError} />
        <Section title="Members" poll={nodes} testId="members">
          {(v) => (
            <>
              <p className="muted">Network {v.network_id}</p>
              {v.nodes.length === 0 ? (
                <Empty>No nodes have joined yet: create an invite below.</Empty>
              ) : (
                <div className="table-scroll">
                  <table className="console-table">
                    <thead>
                      <tr>
                        <th>Node</th>
                        <th>Roles</th>
                        <th>Certificate</th>
                        <th>Last seen</th>
                        <th>Source of</th>
                        <th />
                      </tr>
                    </thead>
                    <tbody>
                      {v.nodes.map((n) => (
                        <MemberRow key={n.node_id} node={n} onChanged={after(nodes)} />
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
            </>
          )}
        </Section>
        <Section title="Invites" poll={nodes} testId="invites">
          {(v) => (
            <>
              {v.invites.length === 0 ? (
                <Empty>No open invites.</Empty>
              ) : (
                <ul className="plain-list">
                  {v.invites.map((i) => (
                    <li key={i.id}>
                      <code>{i.id}</code> {i.roles.join(', ')} · {i.uses_left} use(s) left · until {formatTime(i.expires_at)} · by{' '}
                      {i.created_by}
                    </li>
                  ))}
                </ul>
              )}
              <InviteForm onCreated={nodes.refresh} />
            </>
          )}
        </Section>
        <Section title="Movie bindings" poll={movies} testId="bindings">
          {(v) =>
            v.movies.length === 0 && v.unbound.length === 0 ? (
              <Empty>No movies yet.</Empty>
            ) : (
              <div className="table-scroll">
                <table className="console-table">
                  <thead>
                    <tr>
                      <th>Movie</th>
                      <th>Plays from</th>
                      <th>Bound</th>
                      <th>Re-point</th>
                    </tr>
                  </thead>
                  <tbody>
                    {v.movies.map((m) => (
                      <tr key={m.movie} data-testid={`binding-${m.movie}`}>
                        <td>{m.movie}</td>
                        <td className="mono" title={m.origin}>
                          {short(m.origin)}
                        </td>
                        <td>
                          {formatTime(m.bound_at)} ({m.how})
                        </td>
                        <td>
                          <RepointForm movie={m} onDone={after(movies)} />
                        </td>
                      </tr>
                    ))}
                    {v.unbound.map((m) => (
                      <tr key={m.movie}>
                        <td>{m.movie}</td>
                        <td colSpan={3} className="muted">
                          not bound ({m.ingests.length} announced)
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )
          }
        </Section>
        <Section title="Requests" poll={requests} testId="requests">
          {(list) =>
            list.length === 0 ? (
              <Empty>No movie requests.</Empty>
            ) : (
              <ul className="plain-list">
                {list.map((r) => (
                  <li key={r.id} data-testid={`request-${r.id}`}>
                    <strong>{r.title ?? `TMDb ${r.tmdb_id}`}</strong> <span className={`tag tag-${r.state}`}>{r.state}</span>{' '}
                    {r.requesters} requester(s){r.reason ? ` · ${r.reason}` : ''}{' '}
                    {r.state === 'pending' && (
                      <button type="button" onClick={() => net.requestAction(r.id, 'approve').then(() => after(requests)(), (e) => after(requests)(errorMessage(e)))}>
                        Approve
                      </button>
                    )}
                    {!['ready', 'failed', 'rejected'].includes(r.state) && (
                      <button type="button" onClick={() => net.requestAction(r.id, 'reject').then(() => after(requests)(), (e) => after(requests)(errorMessage(e)))}>
                        Reject
                      </button>
                    )}
                    {(r.state === 'failed' || r.state === 'rejected') && (
                      <button type="button" onClick={() => net.requestAction(r.id, 'retry').then(() => after(requests)(), (e) => after(requests)(errorMessage(e)))}>
                        Retry
                      </button>
                    )}
                  </li>
                ))}
              </ul>
            )
          }
        </Section>
        <Section title="Users" poll={users} testId="users">
          {(list) =>
            list.length === 0 ? (
              <Empty>No accounts.</Empty>
            ) : (
              <div className="table-scroll">
                <table className="console-table">
                  <thead>
                    <tr>
                      <th>Email</th>
                      <th>Tier</th>
                      <th>Role</th>
                      <th>Since</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((u) => (
                      <tr key={u.id}>
                        <td>
                          {u.email}
                          {u.email_verified ? '' : ' (unverified)'}
                        </td>
                        <td>{u.tier}</td>
                        <td>{u.role}</td>
                        <td>{formatTime(u.created_at)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )
          }
        </Section>
      </>
    );
  }

  return (
    <main id="main" className="console-standalone">
      <header className="site-header">
        <span className="brand">reelnet · network console</span>
        <nav aria-label="Tracker">
          <a href="/account">Account</a>
        </nav>
      </header>
      <section className="screen" aria-labelledby="page-title">
        <h1 id="page-title">Network</h1>
        {content}
      </section>
    </main>
  );
}
