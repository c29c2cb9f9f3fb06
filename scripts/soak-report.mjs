// The chaos soak's checks and summary (scripts/soak.sh runs it at the end):
//
//   node scripts/soak-report.mjs RUN_DIR PROFILE MINUTES
//
// Reads RUN_DIR/events.jsonl (fault starts and ends), RUN_DIR/samples.jsonl (every 2 s: RSS
// of the tracker and each node, each node's catalog fingerprint, which nodes hold full copies
// of which movie) and RUN_DIR/players/viewer*.json (web/e2e/soakplayer.mjs), prints a table
// and writes RUN_DIR/report.json. Exits 1 when a check fails.
//
// Checks and limits (full profile = the issue's targets; ci = the 1-minute suite step on a
// loaded 2-core machine, same targets except where noted):
// - every viewer: no fatal playback error; longest rebuffer ≤ 5 s; rebuffers ≤ the number of
//   faults that hit the viewer's node (kill, cut, disk, slow aimed at it); a seek waits ≤ 5 s
//   for playback to resume, except while the viewer's own node is down or cut off;
// - progress: every viewer's newest acknowledged write is what the tracker holds after the
//   soak (so no acknowledged write was lost), and at least one write was acknowledged;
// - catalogs: after each fault ends (and any other fault still on then), every node's
//   catalog is equal again within 30 s (samples every 2 s, so times are ±2 s);
// - replicas: after the replica kill, every library movie is back to its replica count
//   within the node's downtime + 60 s;
// - watch party: both members receive frames again within 30 s of each tracker restart;
// - RSS: no process grows more than 10 % (ci: 50 %; a 1-minute soak has hardly any warm
//   phase) between the first samples after warm-up (first 20 % of the soak) and the last.
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const [dir, profile = 'full', minutes = '10'] = process.argv.slice(2);
const jsonl = (f) =>
  existsSync(f)
    ? readFileSync(f, 'utf8')
        .split('\n')
        .filter(Boolean)
        .flatMap((l) => {
          try {
            return [JSON.parse(l)];
          } catch {
            return [];
          }
        })
    : [];
const events = jsonl(join(dir, 'events.jsonl'));
const samples = jsonl(join(dir, 'samples.jsonl'));
const start = events.find((e) => e.kind === 'soak' && e.phase === 'start');
const end = events.find((e) => e.kind === 'soak' && e.phase === 'end');
const replication = start?.replication ?? 2;
const LIMITS = {
  stall_s: 5,
  reconverge_s: 30,
  rereplicate_extra_s: 60,
  party_gap_s: 30,
  rss_growth: profile === 'ci' ? 0.5 : 0.1,
};
const failures = [];
const fail = (msg) => failures.push(msg);
const rel = (t) => ((t - start.t) / 1000).toFixed(1);

// ---- viewers ---------------------------------------------------------------------------------
const viewers = [];
for (const f of readdirSync(join(dir, 'players')).filter((f) => /^viewer\d+\.json$/.test(f)).sort()) {
  const v = JSON.parse(readFileSync(join(dir, 'players', f), 'utf8'));
  const node = Number(v.name.replace('viewer', ''));
  const hits = events.filter((e) => e.phase === 'start' && e.node === node && ['kill', 'cut', 'disk', 'slow'].includes(e.kind));
  const inSoak = (s) => s.at >= start.t && s.at <= (end?.t ?? Infinity);
  const rebuffers = v.stalls.filter((s) => s.kind === 'rebuffer' && inSoak(s));
  const seeks = v.stalls.filter((s) => s.kind === 'seek');
  const row = {
    viewer: v.name,
    node,
    faults_on_node: hits.map((e) => e.kind),
    rebuffers: rebuffers.length,
    longest_stall_s: Math.max(0, ...rebuffers.map((s) => s.secs)),
    rebuffer_at_s: rebuffers.map((s) => Number(rel(s.at))),
    startup_s: v.stalls.find((s) => s.kind === 'start')?.secs ?? null,
    longest_seek_s: Math.max(0, ...seeks.map((s) => s.secs)),
    seeks: v.seeks,
    loops: v.loops,
    played_s: Math.round(v.played_secs),
    segments: v.segments,
    retries: v.retries,
    fatal: v.fatal.length,
    fatal_errors: v.fatal.map((f) => `${rel(f.at)} s: ${f.what}`),
    progress_acked: v.progress.acked.length,
    progress_failed: v.progress.failed,
    progress_lost: v.progress.readback?.lost?.length ?? null,
    progress_unread: v.progress.readback?.errors?.length ?? null,
    crashed: v.crashed ?? null,
  };
  viewers.push(row);
  if (v.crashed) fail(`${v.name}: the player crashed: ${v.crashed.split('\n')[0]}`);
  if (row.fatal > 0) fail(`${v.name}: ${row.fatal} fatal playback error(s): ${row.fatal_errors.join('; ')}`);
  // A seek waits for its first segment; over the limit it is a failure unless the viewer's
  // own node was down or cut off then (nothing could serve it).
  const ownOutage = (t) => events.some((e) => e.phase === 'start' && e.node === node && (e.kind === 'kill' || e.kind === 'cut') && t >= e.t && t <= (events.find((x) => x.phase === 'end' && x.kind === e.kind && x.node === node && x.t >= e.t)?.t ?? Infinity) + 5000);
  for (const s of seeks.filter(inSoak)) {
    if (s.secs > LIMITS.stall_s && !ownOutage(s.at)) fail(`${v.name}: a seek waited ${s.secs.toFixed(1)} s at ${rel(s.at)} s (limit ${LIMITS.stall_s} s)`);
  }
  if (row.longest_stall_s > LIMITS.stall_s) fail(`${v.name}: a ${row.longest_stall_s.toFixed(1)} s stall (limit ${LIMITS.stall_s} s)`);
  if (row.rebuffers > hits.length) fail(`${v.name}: ${row.rebuffers} rebuffers, ${hits.length} fault(s) hit its node`);
  if (row.played_s < 5) fail(`${v.name}: played only ${row.played_s} s`);
  if (!v.progress.readback) fail(`${v.name}: progress was not read back`);
  else {
    if (row.progress_lost) fail(`${v.name}: ${row.progress_lost} acknowledged progress write(s) lost: ${JSON.stringify(v.progress.readback.lost)}`);
    if (row.progress_unread) fail(`${v.name}: progress could not be read back for ${row.progress_unread} movie(s)`);
    if (row.progress_acked === 0) fail(`${v.name}: no progress write was acknowledged`);
  }
}
if (viewers.length === 0) fail('no viewer results');

// ---- party -------------------------------------------------------------------------------------
const party = [];
for (const f of readdirSync(join(dir, 'players')).filter((f) => /^viewer\d+\.json$/.test(f))) {
  const v = JSON.parse(readFileSync(join(dir, 'players', f), 'utf8'));
  if (!v.party) continue;
  const p = v.party;
  const row = { member: v.name, role: p.role, room: p.room, connects: p.connects.length, closes: p.closes.length, frames: p.frame_count ?? p.frames.length, state_frames: p.state_frames, back_after_tracker_restart_s: [] };
  for (const e of events.filter((e) => e.kind === 'tracker' && e.phase === 'end')) {
    const next = p.frames.find(([t]) => t > e.t);
    const gap = next ? (next[0] - e.t) / 1000 : null;
    row.back_after_tracker_restart_s.push(gap);
    if (gap === null || gap > LIMITS.party_gap_s) fail(`party ${v.name}: no frame within ${LIMITS.party_gap_s} s of the tracker restart at ${rel(e.t)} s`);
  }
  if (!p.room) fail(`party ${v.name}: never joined a room`);
  party.push(row);
}
if (party.length < 2) fail(`the watch party has ${party.length} member(s), want 2`);
if (party.length && !party.some((p) => p.role === 'guest' && p.state_frames > 0)) fail('party: the guest received no state frame');

// ---- catalogs and replicas ---------------------------------------------------------------------
const converged = (s) => {
  const fps = Object.values(s.catalog ?? {});
  return fps.length > 0 && fps.every((f) => f && f === fps[0]);
};
const movies = [...new Set(samples.flatMap((s) => Object.keys(s.copies ?? {})))];
const faults = [];
for (const e of events.filter((e) => e.phase === 'end' && e.kind !== 'soak' && e.kind !== 'report')) {
  const startEv = [...events].reverse().find((x) => x.kind === e.kind && x.phase === 'start' && x.t <= e.t && x.node === e.node);
  // Other faults still on when this one ended: catalogs can only agree once they are over
  // too, so the limit counts from the last of their ends.
  const endOf = (x) => events.find((y) => y.phase === 'end' && y.kind === x.kind && y.node === x.node && y.t >= x.t);
  const still = events
    .filter((x) => x.phase === 'start' && x !== startEv && x.kind !== 'soak' && x.kind !== 'report' && x.t <= e.t)
    .filter((x) => !endOf(x) || endOf(x).t > e.t);
  const overlapping = still.map((x) => `${x.kind}${x.node ? ` node ${x.node}` : ''}`);
  const lastEnd = Math.max(e.t, ...still.map((x) => endOf(x)?.t ?? Infinity));
  const ok = samples.filter((s) => s.t >= e.t).find(converged);
  const secs = ok ? (ok.t - e.t) / 1000 : null;
  const okLast = samples.filter((s) => s.t >= lastEnd).find(converged);
  const secsLast = okLast ? (okLast.t - lastEnd) / 1000 : null;
  const row = { fault: e.kind, node: e.node, start_s: startEv ? Number(rel(startEv.t)) : null, end_s: Number(rel(e.t)), reconverged_after_s: secs, overlapping, reconverged_after_last_overlap_s: still.length ? secsLast : undefined };
  if (secsLast === null || secsLast > LIMITS.reconverge_s) fail(`catalogs not equal again within ${LIMITS.reconverge_s} s after ${e.kind} ended at ${rel(e.t)} s${still.length ? ` and the faults still on then (${overlapping.join(', ')}) ended` : ''} (${secsLast === null ? 'never' : `${secsLast} s`})`);
  if (e.kind === 'kill' && startEv) {
    // Library movies only (the one still ingesting has no replica count yet).
    const lib = movies.filter((m) => samples.filter((s) => s.t < startEv.t).some((s) => (s.copies[m] ?? []).length >= replication));
    const during = samples.filter((s) => s.t >= startEv.t);
    const under = during.find((s) => lib.some((m) => (s.copies[m] ?? []).length < replication));
    row.under_replicated = Boolean(under);
    if (under) {
      const back = during.find((s) => s.t > under.t && lib.every((m) => (s.copies[m] ?? []).length >= replication));
      row.replicas_back_after_kill_s = back ? (back.t - startEv.t) / 1000 : null;
      row.replicas_back_after_restart_s = back ? (back.t - e.t) / 1000 : null;
      const limit = (e.t - startEv.t) / 1000 + LIMITS.rereplicate_extra_s;
      if (!back || row.replicas_back_after_kill_s > limit) fail(`replicas not back to ${replication} within ${limit.toFixed(0)} s of the kill at ${rel(startEv.t)} s`);
    }
  }
  faults.push(row);
}

// ---- RSS ---------------------------------------------------------------------------------------
const soakLen = ((end?.t ?? samples.at(-1)?.t ?? 0) - start.t) / 1000;
const warmAt = start.t + soakLen * 200;
const rss = [];
const procs = new Set(samples.flatMap((s) => Object.keys(s.rss ?? {})));
for (const name of procs) {
  const series = samples.filter((s) => s.rss[name]).map((s) => ({ t: s.t, pid: s.rss[name][0], kb: s.rss[name][1] }));
  const last = series.at(-1);
  if (!last) continue;
  const samePid = series.filter((s) => s.pid === last.pid);
  // Warm: past the first 20 % of the soak, and (a restarted process) 20 % of the soak after
  // its own start.
  const warmFrom = Math.max(warmAt, samePid[0].t + soakLen * 200);
  const warm = samePid.filter((s) => s.t >= warmFrom);
  const row = { process: name, pid: last.pid, restarted: samePid.length !== series.length, samples: series.length };
  const mean = (xs) => xs.reduce((a, x) => a + x.kb, 0) / xs.length;
  row.max_mib = Math.max(...series.map((s) => s.kb)) / 1024;
  if (warm.length >= 6) {
    const a = mean(warm.slice(0, 3));
    const b = mean(warm.slice(-3));
    row.warm_mib = a / 1024;
    row.end_mib = b / 1024;
    row.growth = b / a - 1;
    if (row.growth > LIMITS.rss_growth) fail(`${name}: RSS grew ${(row.growth * 100).toFixed(1)} % after warm-up (limit ${LIMITS.rss_growth * 100} %)`);
  } else row.note = row.restarted ? 'restarted during the soak: too few samples of the new process after warm-up' : 'too few samples';
  // RSS over time, one point per tenth of the soak (MiB), for docs/benchmarks.md.
  row.over_time_mib = Array.from({ length: 10 }, (_, k) => {
    const t = start.t + ((k + 1) * soakLen * 1000) / 10;
    const s = [...series].reverse().find((x) => x.t <= t);
    return s ? Math.round(s.kb / 1024) : null;
  });
  rss.push(row);
}

// ---- output ------------------------------------------------------------------------------------
const pad = (x, n) => String(x).padEnd(n);
const f1 = (x) => (x === null || x === undefined ? '-' : Number(x).toFixed(1));
console.log(`\nchaos soak: profile ${profile}, ${minutes} min, seed ${start?.seed}, ${samples.length} samples`);
console.log('\nviewer   node  faults-on-node        rebuffers  longest-stall  startup  longest-seek  seeks  fatal  progress acked/failed/lost');
for (const v of viewers) {
  console.log(`${pad(v.viewer, 8)} ${pad(v.node, 5)} ${pad(v.faults_on_node.join(',') || '-', 21)} ${pad(v.rebuffers, 10)} ${pad(`${f1(v.longest_stall_s)} s`, 14)} ${pad(`${f1(v.startup_s)} s`, 8)} ${pad(`${f1(v.longest_seek_s)} s`, 13)} ${pad(v.seeks, 6)} ${pad(v.fatal, 6)} ${v.progress_acked}/${v.progress_failed}/${v.progress_lost ?? '?'}`);
}
console.log('\nfault    node  start   end     catalogs-equal-after  replicas-back (after kill / after restart)  still-on');
for (const f of faults) {
  const rep = f.fault === 'kill' ? (f.under_replicated ? `${f1(f.replicas_back_after_kill_s)} s / ${f1(f.replicas_back_after_restart_s)} s` : 'never under-replicated') : '';
  console.log(`${pad(f.fault, 8)} ${pad(f.node ?? '-', 5)} ${pad(`${f.start_s ?? '-'}s`, 7)} ${pad(`${f.end_s}s`, 7)} ${pad(`${f1(f.reconverged_after_s)} s`, 21)} ${pad(rep, 42)} ${f.overlapping.length ? `${f.overlapping.join(', ')} (equal ${f1(f.reconverged_after_last_overlap_s)} s after it ended)` : '-'}`);
}
console.log('\nparty    role   connects  closes  frames  state-frames  first-frame-after-tracker-restart');
for (const p of party) console.log(`${pad(p.member, 8)} ${pad(p.role, 6)} ${pad(p.connects, 9)} ${pad(p.closes, 7)} ${pad(p.frames, 7)} ${pad(p.state_frames, 13)} ${p.back_after_tracker_restart_s.map((x) => `${f1(x)} s`).join(', ')}`);
console.log('\nprocess  RSS warm → end (MiB)   growth   max    over time (MiB, tenths of the soak)');
for (const r of rss.sort((a, b) => a.process.localeCompare(b.process))) {
  console.log(`${pad(r.process, 8)} ${pad(r.growth === undefined ? r.note : `${f1(r.warm_mib)} → ${f1(r.end_mib)}`, 22)} ${pad(r.growth === undefined ? '-' : `${(r.growth * 100).toFixed(1)} %`, 8)} ${pad(f1(r.max_mib), 6)} ${r.over_time_mib.join(' ')}`);
}
let ingest = null;
try {
  ingest = JSON.parse(readFileSync(join(dir, 'ingest-live.json'), 'utf8'));
} catch {
  /* absent */
}
console.log(`\nthe movie ingesting during the soak (node 2's /admin/v1/ingest at the end): ${JSON.stringify(ingest)?.slice(0, 400)}`);
const writes = viewers.reduce((a, v) => a + v.progress_acked, 0);
console.log(`\nprogress: ${writes} acknowledged writes, newest of each viewer read back, ${viewers.reduce((a, v) => a + (v.progress_lost ?? 0), 0)} lost`);
console.log(`limits: stall ≤ ${LIMITS.stall_s} s, rebuffers ≤ faults on the viewer's node, catalogs equal ≤ ${LIMITS.reconverge_s} s after a fault, replicas back ≤ downtime + ${LIMITS.rereplicate_extra_s} s, RSS growth ≤ ${LIMITS.rss_growth * 100} %`);
const report = { profile, minutes: Number(minutes), seed: start?.seed, limits: LIMITS, viewers, faults, party, rss, ingest, progress_writes: writes, failures, passed: failures.length === 0 };
writeFileSync(join(dir, 'report.json'), JSON.stringify(report, null, 2));
if (failures.length) {
  console.log(`\nFAILED (${failures.length}):`);
  for (const f of failures) console.log(`  - ${f}`);
  process.exit(1);
}
console.log('\nPASSED');
