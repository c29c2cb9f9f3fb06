import * as api from '../../api/console';
import { LineChart, Ring, StackedBar, formatBytes, formatNumber, formatTime } from '../../components/console/Charts';
import { Page } from '../../components/Page';
import { ProgressBar } from '../../components/ProgressBar';
import { Empty, Failed, Loading } from '../../components/States';
import { usePolling } from '../../hooks/usePolling';
import { ConsoleNav, NotOperator } from './ConsoleNav';

/** How often the node page asks again while it is open. */
export const NODE_POLL_MS = 5000;

const REACHABILITY: Record<string, string> = {
  public: 'Public: peers reach it directly',
  private: 'Behind NAT: reached through hole punching or a relay',
  relayed: 'Relayed: reached only through a relay',
  unknown: 'Not known yet (AutoNAT has not decided)',
};

function short(id: string) {
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

/** This node at a glance: reachability, certificates, peers, disk, replicas, traffic, the last hour. */
export default function NodePage() {
  const status = usePolling((s) => api.status(s), NODE_POLL_MS);
  const history = usePolling((s) => api.history(s), NODE_POLL_MS * 2);

  let body;
  if (status.errorStatus === 403) body = <NotOperator />;
  else if (status.loading) body = <Loading label="Loading the node's status…" />;
  else if (!status.data) body = <Failed message={status.error ?? 'Could not load the status.'} onRetry={status.refresh} />;
  else {
    const st = status.data;
    const m = st.membership;
    const samples = history.data?.samples ?? [];
    const secs = (s: api.ConsoleSample) => (s.secs > 0 ? s.secs : 10);
    body = (
      <>
        {status.error && <p className="stale" role="status">Showing the last answer: {status.error}</p>}
        <div className="console-grid">
          <article className="console-card" data-testid="card-reachability">
            <h2>Reachability</h2>
            <p>
              <span className={`tag tag-${st.reachability}`}>{st.reachability}</span>{' '}
              {REACHABILITY[st.reachability] ?? ''}
            </p>
            <p className="muted">Gateway: {st.public_url}</p>
            {st.confirmed_addresses.length > 0 ? (
              <ul className="mono-list">
                {st.confirmed_addresses.map((a) => (
                  <li key={a}>{a}</li>
                ))}
              </ul>
            ) : (
              <p className="muted">No confirmed addresses.</p>
            )}
            {st.relay && <p className="muted">Relay: {st.relay}</p>}
            <p>HTTPS certificate: {st.https_not_after ? `valid until ${formatTime(st.https_not_after)}` : 'none (plain HTTP)'}</p>
          </article>

          <article className="console-card" data-testid="card-membership">
            <h2>Membership</h2>
            {m.member ? (
              <>
                <p>
                  Member{m.open ? ' (open enrollment)' : ''} with roles{' '}
                  {m.roles.map((r) => (
                    <span key={r} className="tag">
                      {r}
                    </span>
                  ))}
                </p>
                <p>Certificate valid until {formatTime(m.not_after)}</p>
              </>
            ) : (
              <p className="warning">Not a member. {m.problem}</p>
            )}
            <p className="muted">Node {short(st.node_id)}</p>
          </article>

          <article className="console-card" data-testid="card-peers">
            <h2>Peers</h2>
            <p>
              {st.peers.length} {st.peers.length === 1 ? 'node' : 'nodes'} in the catalog, {st.connected_peers} connected
            </p>
            {st.peers.length === 0 ? (
              <Empty>No other nodes yet.</Empty>
            ) : (
              <table className="console-table">
                <thead>
                  <tr>
                    <th>Node</th>
                    <th>Latency</th>
                  </tr>
                </thead>
                <tbody>
                  {st.peers.map((p) => (
                    <tr key={p.node_id}>
                      <td title={p.gateway_url}>{short(p.node_id)}</td>
                      <td>{p.latency_ms === null || p.latency_ms === undefined ? 'unreachable' : `${formatNumber(p.latency_ms)} ms`}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </article>

          <article className="console-card" data-testid="card-disk">
            <h2>Disk</h2>
            <StackedBar
              title="Disk use"
              total={st.disk.quota_bytes}
              parts={[
                { label: 'held shares', value: st.disk.held_bytes, className: 'part-held' },
                { label: 'cache', value: st.disk.cache_bytes, className: 'part-cache' },
                { label: 'downloads', value: st.disk.downloads_bytes, className: 'part-downloads' },
              ]}
            />
          </article>

          <article className="console-card" data-testid="card-traffic">
            <h2>Served</h2>
            <div className="ring-row">
              <Ring label="Hot-cache hit ratio" fraction={st.served.hit_ratio} />
              <div>
                <p>From disk: {formatBytes(st.served.bytes_local)}</p>
                <p>From peers: {formatBytes(st.served.bytes_peer)}</p>
                <p className="muted">Hit ratio: segments served from disk</p>
              </div>
            </div>
          </article>

          <article className="console-card" data-testid="card-replicas">
            <h2>Replicas</h2>
            {st.replicas.length === 0 ? (
              <Empty>This node is responsible for no movies yet.</Empty>
            ) : (
              <ul className="replica-list">
                {st.replicas.map((r) => (
                  <li key={r.manifest_id}>
                    <span>{r.movie_id}</span>
                    <ProgressBar fraction={r.completeness} label={`${r.movie_id} completeness`} />
                    <span className="muted">
                      {r.held_segments}/{r.total_segments} segments
                    </span>
                  </li>
                ))}
              </ul>
            )}
          </article>
        </div>

        <h2>Last hour</h2>
        {samples.length === 0 ? (
          <Empty>{history.error ? history.error : 'No samples yet: one is taken every 10 seconds.'}</Empty>
        ) : (
          <div className="console-grid charts">
            <LineChart
              title="Requests"
              unit="/s"
              series={[{ label: 'requests', values: samples.map((s) => s.requests / secs(s)), className: 's1' }]}
            />
            <LineChart
              title="Bytes served"
              unit="KiB/s"
              series={[
                { label: 'from disk', values: samples.map((s) => s.bytes_local / 1024 / secs(s)), className: 's1' },
                { label: 'from peers', values: samples.map((s) => s.bytes_peer / 1024 / secs(s)), className: 's2' },
              ]}
            />
            <LineChart
              title="Peer fetch latency"
              unit="ms"
              series={[
                { label: 'p50', values: samples.map((s) => s.fetch_p50_ms ?? null), className: 's1' },
                { label: 'p95', values: samples.map((s) => s.fetch_p95_ms ?? null), className: 's2' },
                { label: 'p99', values: samples.map((s) => s.fetch_p99_ms ?? null), className: 's3' },
              ]}
            />
          </div>
        )}
      </>
    );
  }
  return (
    <Page title="This node" wide>
      <ConsoleNav />
      {body}
    </Page>
  );
}
