import { screen, within } from '@testing-library/react';
import { describe, expect, it, vi } from 'vitest';
import { NODE_ID, PEER_ID } from '../../test/console';
import { json, mockFetch, type Call } from '../../test/fetch';
import { renderApp } from '../../test/render';

function node(id: string, over: Record<string, unknown> = {}) {
  return {
    node_id: id,
    roles: ['replica'],
    open: false,
    origins: ['http://127.0.0.1:8080'],
    enrolled_at: 1_800_000_000,
    serial: 1,
    not_after: 1_900_000_000,
    revoked: false,
    revoked_at: null,
    last_seen: 1_800_000_100,
    movies: ['tmdb-603'],
    ...over,
  };
}

const INGEST = {
  manifest: 'd'.repeat(64),
  origin: PEER_ID,
  ingest_id: 'e'.repeat(32),
  seq: 2,
  title: 'The Matrix',
  year: 1999,
  complete: true,
  announced_at: 1_800_000_000,
};

function routes(state: { nodes: ReturnType<typeof node>[] }) {
  return mockFetch({
    'GET /api/v1/admin/nodes': () => json(200, { network_id: 'net-1', nodes: state.nodes, invites: [] }),
    'GET /api/v1/admin/movies': json(200, {
      network_id: 'net-1',
      version: 4,
      movies: [
        {
          movie: 'tmdb-603',
          origin: NODE_ID,
          ingest_id: 'f'.repeat(32),
          manifest: 'c'.repeat(64),
          version: 4,
          bound_at: 1_800_000_000,
          how: 'first_ingest',
          by: NODE_ID,
          ingests: [INGEST],
        },
      ],
      unbound: [],
    }),
    'GET /api/v1/admin/requests': json(200, [
      {
        id: 'r1',
        tmdb_id: 550,
        title: 'Fight Club',
        year: 1999,
        state: 'pending',
        percent: 0,
        reason: null,
        movie_id: null,
        requesters: 2,
        has_source: false,
        created_at_ms: 1,
        updated_at_ms: 1,
      },
    ]),
    'GET /api/v1/admin/users': json(200, [
      { id: 'u1', email: 'admin@example.org', display_name: 'A', email_verified: true, tier: 'free', tier_until: null, role: 'admin', created_at: 1 },
      { id: 'u2', email: 'viewer@example.org', display_name: 'V', email_verified: false, tier: 'premium', tier_until: null, role: 'user', created_at: 2 },
    ]),
    'POST /api/v1/admin/nodes/invites': (call: Call) =>
      json(201, {
        token: 'rninv_abc',
        command: 'reelnet-node --tracker http://127.0.0.1:7000 --invite rninv_abc',
        id: 'i1',
        roles: (call.body as { roles: string[] }).roles,
        uses: 1,
        expires_at: 1_900_000_000,
        network_id: 'net-1',
      }),
    [`POST /api/v1/admin/nodes/${NODE_ID}/revoke`]: () => {
      state.nodes = state.nodes.map((n) => (n.node_id === NODE_ID ? node(NODE_ID, { revoked: true, revoked_at: 1_800_000_200 }) : n));
      return json(200, state.nodes[0]);
    },
    [`PUT /api/v1/admin/nodes/${NODE_ID}/roles`]: (call: Call) => json(200, node(NODE_ID, call.body as Record<string, unknown>)),
    'POST /api/v1/admin/movies/tmdb-603/bind': json(200, {}),
    'POST /api/v1/admin/requests/r1/approve': json(200, {}),
  });
}

describe('console: network page (tracker origin)', () => {
  it('lists members, bindings, requests and users with the session cookie, no bearer token', async () => {
    const { calls } = routes({ nodes: [node(NODE_ID)] });
    renderApp('/console/network');
    const member = await screen.findByTestId(`member-${NODE_ID}`);
    expect(member.textContent).toContain('tmdb-603');
    expect((within(member).getByRole('checkbox', { name: /^replica role/ }) as HTMLInputElement).checked).toBe(true);
    expect((await screen.findByTestId('binding-tmdb-603')).textContent).toContain('first_ingest');
    expect((await screen.findByTestId('request-r1')).textContent).toContain('Fight Club');
    const users = await screen.findByTestId('users');
    expect(users.textContent).toContain('viewer@example.org (unverified)');
    expect(users.textContent).toContain('premium');
    expect(calls.every((c) => c.headers.authorization === undefined)).toBe(true);
    // No node menu here: its own frame.
    expect(screen.queryByRole('navigation', { name: 'Main' })).toBeNull();
  });

  it('creates an invite and shows the command to run', async () => {
    const { calls } = routes({ nodes: [] });
    const { user } = renderApp('/console/network');
    expect(await screen.findByText('No nodes have joined yet: create an invite below.')).toBeTruthy();
    await user.click(screen.getByRole('checkbox', { name: 'ingest' }));
    await user.click(screen.getByRole('button', { name: 'Create invite' }));
    expect((await screen.findByTestId('invite-command')).textContent).toBe(
      'reelnet-node --tracker http://127.0.0.1:7000 --invite rninv_abc',
    );
    expect(calls.find((c) => c.method === 'POST')!.body).toEqual({ roles: ['replica', 'ingest'], uses: 1 });
  });

  it('revokes a member after confirmation, changes roles and re-points a binding', async () => {
    vi.spyOn(window, 'confirm').mockReturnValue(true);
    const state = { nodes: [node(NODE_ID)] };
    const { calls } = routes(state);
    const { user } = renderApp('/console/network');
    const member = await screen.findByTestId(`member-${NODE_ID}`);
    await user.click(within(member).getByRole('checkbox', { name: /^ingest role/ }));
    await user.click(within(member).getByRole('button', { name: 'Save roles' }));
    expect(calls.find((c) => c.method === 'PUT')!.body).toEqual({ roles: ['replica', 'ingest'] });

    await user.click(within(member).getByRole('button', { name: 'Revoke' }));
    expect(await within(await screen.findByTestId(`member-${NODE_ID}`)).findByText(/^revoked/)).toBeTruthy();

    await user.selectOptions(screen.getByLabelText('New source for tmdb-603'), INGEST.manifest);
    await user.click(screen.getByRole('button', { name: 'Bind' }));
    expect(calls.find((c) => c.path === '/api/v1/admin/movies/tmdb-603/bind')!.body).toEqual({ manifest: INGEST.manifest });

    await user.click(screen.getByRole('button', { name: 'Approve' }));
    expect(calls.some((c) => c.path === '/api/v1/admin/requests/r1/approve')).toBe(true);
  });

  it('asks to sign in at the tracker without a session and refuses non-admins', async () => {
    mockFetch({
      'GET /api/v1/admin/nodes': json(401, { error: 'missing_token', message: 'sign in first' }),
      'GET /api/v1/admin/movies': json(401, { error: 'missing_token', message: 'sign in first' }),
      'GET /api/v1/admin/requests': json(401, { error: 'missing_token', message: 'sign in first' }),
      'GET /api/v1/admin/users': json(401, { error: 'missing_token', message: 'sign in first' }),
    });
    renderApp('/console/network');
    const link = within(await screen.findByTestId('network-sign-in')).getByRole('link', { name: 'Sign in' });
    expect(link.getAttribute('href')).toBe('/login?next=/console/network');
  });

  it('says the console is for admins on 403', async () => {
    const no = json(403, { error: 'not_admin', message: 'only admins may do this' });
    mockFetch({
      'GET /api/v1/admin/nodes': () => no.clone(),
      'GET /api/v1/admin/movies': () => no.clone(),
      'GET /api/v1/admin/requests': () => no.clone(),
      'GET /api/v1/admin/users': () => no.clone(),
    });
    renderApp('/console/network');
    expect((await screen.findByTestId('network-forbidden')).textContent).toContain('admins');
  });
});
