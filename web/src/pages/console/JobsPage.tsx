import { useState, type FormEvent } from 'react';
import * as api from '../../api/console';
import { formatBytes, formatDuration, formatNumber } from '../../components/console/Charts';
import { ErrorAlert } from '../../components/ErrorAlert';
import { Page } from '../../components/Page';
import { ProgressBar } from '../../components/ProgressBar';
import { Empty, Failed, Loading } from '../../components/States';
import { errorMessage } from '../../hooks/useAsync';
import { usePolling } from '../../hooks/usePolling';
import { ConsoleNav, NotOperator } from './ConsoleNav';

/** How often the jobs page asks again while it is open (progress bars move live). */
export const JOBS_POLL_MS = 2000;

const STATE_WORDS: Record<string, string> = {
  queued: 'Queued',
  opening: 'Opening the source',
  transcoding: 'Transcoding',
  done: 'Done',
  failed: 'Failed',
};

/** The share of a job that is done: download first for torrents, then the transcode. */
export function jobFraction(j: api.ConsoleJob): number {
  if (j.state === 'done') return 1;
  const pos = j.position_fraction ?? 0;
  if (j.downloaded_fraction !== null && j.downloaded_fraction !== undefined && j.total_bytes > 0) {
    return Math.min(1, (j.downloaded_fraction + pos) / 2);
  }
  return pos;
}

function JobRow({ job, onCancel }: { job: api.ConsoleJob; onCancel: (id: number) => void }) {
  const running = job.state !== 'done' && job.state !== 'failed';
  const percent = Math.round(jobFraction(job) * 100);
  return (
    <li className={`job job-${job.state}`} data-testid={`job-${job.id}`} data-state={job.state}>
      <div className="job-head">
        <strong>{job.title ?? job.movie_id ?? job.source}</strong>
        <span className={`tag tag-${job.state}`}>{STATE_WORDS[job.state] ?? job.state}</span>
        {running && (
          <button type="button" className="link-button" onClick={() => onCancel(job.id)}>
            Cancel
          </button>
        )}
      </div>
      <ProgressBar fraction={jobFraction(job)} label={`Job ${job.id} progress`} />
      <p className="job-stats">
        <span>{percent}%</span>
        {job.total_bytes > 0 && (
          <span>
            downloaded {formatBytes(job.downloaded_bytes)} of {formatBytes(job.total_bytes)}
          </span>
        )}
        <span>
          at {formatDuration(job.position_s)}
          {job.duration_s ? ` of ${formatDuration(job.duration_s)}` : ''}
        </span>
        {running && job.speed_x > 0 && <span>{formatNumber(job.speed_x)}× realtime</span>}
        {running && <span>ETA {formatDuration(job.eta_s)}</span>}
      </p>
      {job.tracks.length > 0 && (
        <p className="job-tracks">
          {job.tracks.map((t) => (
            <span key={t.name} className="tag">
              {t.name}
              {t.language ? ` (${t.language})` : ''}
            </span>
          ))}
        </p>
      )}
      {job.error && (
        <p className="job-error" role="alert">
          {job.error === 'cancelled' ? 'Cancelled.' : `It failed: ${job.error}`}
        </p>
      )}
      {job.not_supported.length > 0 && <p className="muted">Left out: {job.not_supported.join('; ')}</p>}
      <p className="muted mono">{job.source}</p>
    </li>
  );
}

/** Ingest jobs with live progress; start one from a magnet, a .torrent or a path; cancel. */
export default function JobsPage() {
  const jobs = usePolling((s) => api.jobs(s), JOBS_POLL_MS);
  const [source, setSource] = useState('');
  const [title, setTitle] = useState('');
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const [formError, setFormError] = useState<string | null>(null);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setFormError(null);
    try {
      if (file) await api.uploadTorrent(file, title.trim() || undefined);
      else await api.startJob(source.trim(), title.trim() || undefined);
      setSource('');
      setTitle('');
      setFile(null);
      jobs.refresh();
    } catch (err) {
      setFormError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  }

  async function cancel(id: number) {
    try {
      await api.cancelJob(id);
    } catch (err) {
      setFormError(errorMessage(err));
    }
    jobs.refresh();
  }

  let list;
  if (jobs.errorStatus === 403) list = <NotOperator />;
  else if (jobs.loading) list = <Loading label="Loading jobs…" />;
  else if (!jobs.data) list = <Failed message={jobs.error ?? 'Could not load the jobs.'} onRetry={jobs.refresh} />;
  else if (jobs.data.length === 0) list = <Empty>No ingest jobs since the node started.</Empty>;
  else
    list = (
      <ul className="job-list">
        {jobs.data.map((j) => (
          <JobRow key={j.id} job={j} onCancel={cancel} />
        ))}
      </ul>
    );

  return (
    <Page title="Ingest jobs" wide>
      <ConsoleNav />
      {jobs.errorStatus !== 403 && (
        <form className="console-form" onSubmit={submit} aria-label="Start an ingest">
          <label>
            Magnet link or file path on the node
            <input
              name="source"
              value={source}
              onChange={(e) => setSource(e.target.value)}
              placeholder="magnet:?xt=urn:btih:… or /srv/movies/film.mkv"
              disabled={file !== null}
            />
          </label>
          <label>
            …or a .torrent file
            <input
              type="file"
              name="torrent"
              accept=".torrent,application/x-bittorrent"
              onChange={(e) => setFile(e.target.files?.[0] ?? null)}
            />
          </label>
          <label>
            Title (optional)
            <input name="title" value={title} onChange={(e) => setTitle(e.target.value)} />
          </label>
          <button type="submit" disabled={busy || (!file && source.trim() === '')}>
            {busy ? 'Starting…' : 'Start ingest'}
          </button>
          {formError && <ErrorAlert message={formError} />}
        </form>
      )}
      {jobs.error && jobs.data && <p className="stale" role="status">Showing the last answer: {jobs.error}</p>}
      {list}
    </Page>
  );
}
