import { useEffect, useState } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router-dom';
import {
  alreadyAvailable,
  createRequest,
  getMyRequests,
  getSubscription,
  moviePath,
  stateLabel,
  type MovieRequest,
  type Subscription,
} from '../api/requests';
import { ErrorAlert } from '../components/ErrorAlert';
import { Page } from '../components/Page';
import { Empty, Failed, Loading } from '../components/States';
import { errorMessage, useAsync } from '../hooks/useAsync';

const FEATURES: Record<string, string> = {
  top_renditions: 'the best picture quality',
  host_watch_parties: 'hosting watch parties',
  more_requests: 'more movie requests each month',
};

/**
 * `/requests`: the user's movie requests with live state, a form to ask for one, and the subscription.
 * `?title=` fills in the form's title (the home page's "Can't find it?" link passes its search).
 * A request for a movie the network has already (409 `already_available`) opens its page.
 */
export default function RequestsPage() {
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const { state, reload, setData } = useAsync(
    async (signal): Promise<{ requests: MovieRequest[]; sub: Subscription }> => {
      const [requests, sub] = await Promise.all([getMyRequests(signal), getSubscription(signal)]);
      return { requests, sub };
    },
    [],
  );
  const [error, setError] = useState<string | null>(null);
  const [tmdbId, setTmdbId] = useState('');
  const [title, setTitle] = useState(() => params.get('title')?.trim() ?? '');
  const [magnet, setMagnet] = useState('');

  // Live state: refresh while anything is still in progress.
  const busy =
    state.status === 'ready' && state.data.requests.some((r) => !['ready', 'failed', 'rejected'].includes(r.state));
  useEffect(() => {
    if (!busy) return undefined;
    const t = setInterval(() => {
      getMyRequests()
        .then((requests) => setData((d) => ({ ...d, requests })))
        .catch(() => undefined);
    }, 5000);
    return () => clearInterval(t);
  }, [busy, setData]);

  async function submit(e: React.FormEvent) {
    e.preventDefault();
    setError(null);
    const id = Number(tmdbId);
    if (!Number.isInteger(id) || id <= 0) {
      setError('Enter the movie’s TMDb id (a positive number).');
      return;
    }
    try {
      const r = await createRequest({
        tmdb_id: id,
        ...(title.trim() ? { title: title.trim() } : {}),
        ...(magnet.trim() ? { magnet: magnet.trim() } : {}),
      });
      setData((d) => ({ ...d, requests: [r, ...d.requests.filter((x) => x.id !== r.id)] }));
      setTmdbId('');
      setTitle('');
      setMagnet('');
    } catch (err) {
      // The network has this movie already: go and watch it instead.
      const movie = alreadyAvailable(err);
      if (movie) {
        navigate(moviePath(movie));
        return;
      }
      setError(errorMessage(err, 'Could not send the request. Try again.'));
    }
  }

  return (
    <Page title="My requests" wide>
      <ErrorAlert message={error} />
      {state.status === 'loading' && <Loading label="Loading your requests…" />}
      {state.status === 'error' && <Failed message={state.error} onRetry={reload} />}
      {state.status === 'ready' && (
        <>
          <section aria-label="Subscription" data-testid="subscription">
            <p>
              Plan: <strong>{state.data.sub.tier === 'premium' ? 'Premium' : 'Free'}</strong>
              {state.data.sub.until !== null &&
                ` until ${new Date(state.data.sub.until * 1000).toLocaleDateString()}`}
              {state.data.sub.status === 'expired' && ' (premium has expired)'} · Requests used:{' '}
              {state.data.sub.requests_used} of {state.data.sub.request_quota} in 30 days
            </p>
            {state.data.sub.tier === 'free' && (
              <p>
                Premium unlocks{' '}
                {state.data.sub.premium_features.map((f) => FEATURES[f] ?? f).join(', ')}.
              </p>
            )}
          </section>
          <form onSubmit={submit} aria-label="Request a movie">
            <label>
              TMDb id <input value={tmdbId} onChange={(e) => setTmdbId(e.target.value)} inputMode="numeric" required />
            </label>
            <label>
              Title <input value={title} onChange={(e) => setTitle(e.target.value)} />
            </label>
            <label>
              Magnet link (optional) <input value={magnet} onChange={(e) => setMagnet(e.target.value)} />
            </label>
            <button type="submit">Request</button>
          </form>
          {state.data.requests.length === 0 ? (
            <Empty>
              <p>You have not requested any movies yet.</p>
            </Empty>
          ) : (
            <ul role="list" data-testid="requests-list">
              {state.data.requests.map((r) => (
                <li key={r.id}>
                  <strong>{r.title ?? `TMDb ${r.tmdb_id}`}</strong>
                  {r.year !== null && ` (${r.year})`} — {stateLabel(r)}
                  {r.state === 'ready' && r.movie_id && (
                    <>
                      {' '}
                      <Link to={`/movie/${r.movie_id}`}>Watch</Link>
                    </>
                  )}
                </li>
              ))}
            </ul>
          )}
        </>
      )}
    </Page>
  );
}
