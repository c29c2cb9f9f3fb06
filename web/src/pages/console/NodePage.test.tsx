import { screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import * as session from '../../session';
import { consoleStatus, sample } from '../../test/console';
import { TOKENS, json, mockFetch } from '../../test/fetch';
import { renderApp } from '../../test/render';

const OPERATOR = { email: 'ada@example.com', access: 'operator' };

describe('console: node page', () => {
  it('shows reachability, membership, peers, disk, replicas, traffic and the last hour', async () => {
    session.save(TOKENS);
    const { calls } = mockFetch({
      'GET /api/v1/console/access': json(200, OPERATOR),
      'GET /api/v1/console/status': json(200, consoleStatus()),
      'GET /api/v1/console/history': json(200, {
        interval_secs: 10,
        capacity: 360,
        samples: [sample(1, 10, null), sample(2, 20, 5), sample(3, 40, 20)],
      }),
    });
    renderApp('/console');

    const reach = await screen.findByTestId('card-reachability');
    expect(reach.textContent).toContain('Behind NAT');
    expect(reach.textContent).toContain('Relay:');
    expect(reach.textContent).toContain('none (plain HTTP)');
    expect(screen.getByTestId('card-membership').textContent).toMatch(/replica.*ingest/);
    const peers = screen.getByTestId('card-peers');
    expect(peers.textContent).toContain('12.5 ms');
    expect(peers.textContent).toContain('1 node in the catalog');
    expect(within(screen.getByTestId('card-disk')).getByRole('img').getAttribute('aria-label')).toBe(
      'Disk use: held shares 2.0 GiB, cache 1.0 GiB, downloads 512.0 MiB of 10.0 GiB',
    );
    expect(within(screen.getByTestId('card-replicas')).getByRole('progressbar').getAttribute('aria-valuenow')).toBe('75');
    expect(within(screen.getByTestId('card-traffic')).getByRole('img').getAttribute('aria-label')).toBe('Hot-cache hit ratio: 75%');

    // Charts of the last hour: rates per second, latency percentiles with gaps.
    const requests = await screen.findByTestId('chart-Requests');
    expect(within(requests).getByRole('img').getAttribute('aria-label')).toBe('Requests: now requests 4 /s');
    const latency = screen.getByTestId('chart-Peer fetch latency');
    expect(within(latency).getByRole('img').getAttribute('aria-label')).toContain('p99 80 ms');
    expect(latency.querySelectorAll('path')).toHaveLength(3);
    // The operator menu is there.
    expect(within(screen.getByRole('navigation', { name: 'Main' })).getByRole('link', { name: 'Console' })).toBeTruthy();
    expect(calls.every((c) => c.headers.authorization === 'Bearer access-1')).toBe(true);
  });

  it('says who may use it when the node refuses (403), with no operator menu', async () => {
    session.save(TOKENS);
    mockFetch({
      'GET /api/v1/console/status': json(403, { error: 'not_operator', message: 'only operators' }),
      'GET /api/v1/console/history': json(403, { error: 'not_operator', message: 'only operators' }),
    });
    renderApp('/console');
    expect((await screen.findByTestId('not-operator')).textContent).toContain('reelnet-node operator add');
    expect(screen.queryByRole('link', { name: 'Console' })).toBeNull();
    expect(screen.queryByTestId('card-reachability')).toBeNull();
  });

  it('shows loading, then an error with a retry, and empty states', async () => {
    session.save(TOKENS);
    let fail = true;
    mockFetch({
      'GET /api/v1/console/access': json(200, OPERATOR),
      'GET /api/v1/console/status': () =>
        fail ? json(503, { error: 'unavailable', message: 'The node is stopping.' }) : json(200, consoleStatus({ peers: [], replicas: [] })),
      'GET /api/v1/console/history': json(200, { interval_secs: 10, capacity: 360, samples: [] }),
    });
    const { user } = renderApp('/console');
    expect(screen.getByRole('status').textContent).toContain('Loading');
    expect((await screen.findByRole('alert')).textContent).toContain('The node is stopping.');
    fail = false;
    await user.click(screen.getByRole('button', { name: 'Try again' }));
    expect((await screen.findByTestId('card-peers')).textContent).toContain('No other nodes yet.');
    expect(screen.getByTestId('card-replicas').textContent).toContain('responsible for no movies');
    expect(screen.getByText(/No samples yet/)).toBeTruthy();
  });

  it('links admins to the network console on the tracker', async () => {
    session.save({ ...TOKENS, user: { ...TOKENS.user, role: 'admin' } });
    mockFetch({
      'GET /api/v1/console/access': json(200, { ...OPERATOR, access: 'admin' }),
      'GET /api/v1/console/status': json(200, consoleStatus()),
      'GET /api/v1/console/history': json(200, { interval_secs: 10, capacity: 360, samples: [] }),
    });
    renderApp('/console');
    const link = await screen.findByTestId('console-network-link');
    expect(link.getAttribute('href')).toBe('/auth/network');
  });
});
