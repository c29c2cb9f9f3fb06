// A small sign-in network for the browser test (sso.mjs) and the sign-in bench
// (scripts/bench-signin.mjs): an SMTP sink, a tracker at http://localhost:PORT (WebAuthn
// needs a host name) and two nodes, each on its own loopback address so cookies behave as
// between real sites — node a listens on 127.0.0.2 and its certificate names `originA`
// (a capture proxy's origin on 127.0.0.4 in the test, its own address otherwise), node b
// on 127.0.0.3. Nodes hold no movies. Debug binaries from $CARGO_TARGET_DIR (or
// ~/.cache/reelnet/target), `release: true` for the release ones.

import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '../..');

/** A free TCP port on `host`. */
export function freePort(host) {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Waits until `url` answers (any status below 500). */
export async function waitHttp(url, secs = 60) {
  const deadline = Date.now() + secs * 1000;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer within ${secs} s`);
}

/** Processes started for one run, their output kept in memory and written to `dir` at exit. */
export class Procs {
  constructor(dir) {
    this.dir = dir;
    this.children = [];
  }

  start(name, cmd, args) {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks = [];
    child.stdout.on('data', (c) => chunks.push(c));
    child.stderr.on('data', (c) => chunks.push(c));
    child.on('exit', () => writeFileSync(join(this.dir, `${name}.log`), Buffer.concat(chunks)));
    child.logText = () => Buffer.concat(chunks).toString();
    child.procName = name;
    this.children.push(child);
    return child;
  }

  /** Writes every log now (a failure) and stops everything. */
  stop({ writeLogs = false } = {}) {
    for (const c of this.children) {
      if (writeLogs) writeFileSync(join(this.dir, `${c.procName}.log`), c.logText());
      c.kill('SIGTERM');
    }
  }
}

/** Runs a command to completion; returns stdout (throws on a non-zero exit). */
export function runSync(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Node `dataDir`'s id, from its local admin API. */
export async function nodeIdOf(dataDir) {
  const admin = JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8'));
  const r = await fetch(`${admin.url}/admin/v1/status`, { headers: { authorization: `Bearer ${admin.token}` } });
  return (await r.json()).node_id;
}

/**
 * Starts the network in `dir`. `originA(port)` gives node a's certificate origin (default:
 * its own address); `graceSecs` is the tracker's refresh grace. Returns
 * `{ tracker, trackerApi, trackerArgs, trackerBin, a: {origin, direct, dir}, b: {...} }`.
 */
export async function startNet(procs, dir, { originA, graceSecs = 10, release = false } = {}) {
  const cache = process.env.REELNET_CACHE ?? join(process.env.HOME ?? '/tmp', '.cache/reelnet');
  const target = process.env.CARGO_TARGET_DIR ?? join(cache, 'target');
  const profile = release ? 'release' : 'debug';
  const trackerBin = join(target, profile, 'reelnet-tracker');
  const nodeBin = join(target, profile, 'reelnet-node');
  for (const bin of [trackerBin, nodeBin]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: cargo build --bins${release ? ' --release' : ''} first`);
  }
  if (!existsSync(join(root, 'web/dist/index.html'))) throw new Error('web/dist is missing: build the web app first (npm run build in web/)');
  const [pt, ps, pa, pb, p2pA, p2pB, quicA, quicB] = await Promise.all([
    freePort('127.0.0.1'),
    freePort('127.0.0.1'),
    freePort('127.0.0.2'),
    freePort('127.0.0.3'),
    freePort('127.0.0.1'),
    freePort('127.0.0.1'),
    freePort('127.0.0.1'),
    freePort('127.0.0.1'),
  ]);
  const tracker = `http://localhost:${pt}`;
  const a = { direct: `http://127.0.0.2:${pa}`, dir: join(dir, 'nodeA') };
  a.origin = originA ? await originA(a) : a.direct;
  const b = { direct: `http://127.0.0.3:${pb}`, origin: `http://127.0.0.3:${pb}`, dir: join(dir, 'nodeB') };

  // aiosmtpd's Maildir handler makes mail/{tmp,new,cur} only when mail/ does not exist yet.
  procs.start('smtp', process.env.REELNET_PYTHON ?? 'python3', ['-m', 'aiosmtpd', '-n', '-l', `127.0.0.1:${ps}`, '-c', 'aiosmtpd.handlers.Mailbox', join(dir, 'mail')]);
  writeFileSync(
    join(dir, 'tracker.toml'),
    `issuer = "${tracker}"
public_url = "${tracker}"
web_url = "${a.origin}"

[auth]
require_verified_email = true

[oauth]
refresh_grace_secs = ${graceSecs}

[smtp]
host = "127.0.0.1"
port = ${ps}
tls = "none"
attempts = 2
`,
  );
  const trackerArgs = ['--config', join(dir, 'tracker.toml'), '--data-dir', join(dir, 'tracker')];
  procs.start('tracker', trackerBin, [...trackerArgs, '--listen', `127.0.0.1:${pt}`]);
  const trackerApi = `http://127.0.0.1:${pt}`;
  await waitHttp(`${trackerApi}/healthz`, 30);

  // The testnet's node config names the tracker's public URL (issuer, where browsers sign in).
  const nodeConfig = readFileSync(join(root, 'configs/testnet/node.toml'), 'utf8').replaceAll('http://localhost:7070', tracker);
  writeFileSync(join(dir, 'node.toml'), nodeConfig);
  const invite = () => runSync(trackerBin, [...trackerArgs, 'node', 'invite', '--role', 'replica', '--ttl', '1h']).trim().split('\n').pop();
  const nodeArgs = (node, listen, p2p, quic) => [
    '--config', join(dir, 'node.toml'), '--data-dir', node.dir, '--listen', listen, '--public-url', node.origin,
    '--p2p', `/ip4/127.0.0.1/tcp/${p2p}`, '--quic', `127.0.0.1:${quic}`, '--tracker', trackerApi,
    '--web-dir', join(root, 'web/dist'), '--invite', invite(),
  ];
  procs.start('nodeA', nodeBin, nodeArgs(a, `127.0.0.2:${pa}`, p2pA, quicA));
  procs.start('nodeB', nodeBin, nodeArgs(b, `127.0.0.3:${pb}`, p2pB, quicB));
  await waitHttp(`${a.direct}/healthz`);
  await waitHttp(`${b.direct}/healthz`);
  a.id = await nodeIdOf(a.dir);
  b.id = await nodeIdOf(b.dir);
  return { tracker, trackerApi, trackerArgs, trackerBin, a, b };
}
