import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startServers } from './helpers/server';

async function landingPage(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${url}/graphql`, { headers: { accept: 'text/html' } });
  return { status: res.status, body: await res.text() };
}

const SANDBOX = /https:\/\/embeddable-sandbox\.cdn\.apollographql\.com/;

describe('GraphQL playground', () => {
  it('opens on an example operation in development, is off in production unless enabled', async () => {
    const secret = { NODE_ENV: 'production', JWT_SECRET: 'p'.repeat(40) };
    const servers = await startServers({}, secret, { ...secret, GRAPHQL_PLAYGROUND: 'true' });
    try {
      const [dev, prod, enabled] = await Promise.all(servers.map((s) => landingPage(s.url)));
      assert.equal(dev.status, 200);
      assert.match(dev.body, SANDBOX);
      assert.match(dev.body, /query Files \{/, 'the example operation is in the page');

      // Off: GET /graphql is an ordinary GraphQL request, refused by CSRF prevention.
      assert.equal(prod.status, 400, 'no playground in production by default');
      assert.doesNotMatch(prod.body, /sandbox/i);

      assert.equal(enabled.status, 200);
      assert.match(enabled.body, SANDBOX);
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  });
});
