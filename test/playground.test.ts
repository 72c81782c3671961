import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startServers } from './helpers/server';

async function landingPage(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${url}/graphql`, { headers: { accept: 'text/html' } });
  return { status: res.status, body: await res.text() };
}

/** Every script and stylesheet the page loads. */
const assetsOf = (html: string): string[] => [...html.matchAll(/<(?:script|link)[^>]+(?:src|href)="([^"]+)"/g)].map((m) => m[1]).filter((u) => u !== 'data:,');

describe('GraphQL explorer (GraphiQL)', () => {
  it('is served from this server in development, with no CDN; off in production unless enabled', async () => {
    const secret = { NODE_ENV: 'production', JWT_SECRET: 'p'.repeat(40) };
    const servers = await startServers({}, secret, { ...secret, GRAPHQL_PLAYGROUND: 'true' });
    try {
      const [dev, prod, enabled] = await Promise.all(servers.map((s) => landingPage(s.url)));
      assert.equal(dev.status, 200);
      assert.match(dev.body, /graphiql\.min\.js/);
      assert.match(dev.body, /query Files \{/, 'the example operation is in the page');
      const assets = assetsOf(dev.body);
      assert.ok(assets.length >= 4, `the page loads GraphiQL and React: ${assets.join(', ')}`);
      for (const asset of assets) {
        assert.match(asset, /^\/[^/]/, `${asset} is served by this server (the explorer must work offline)`);
        const res = await fetch(`${servers[0].url}${asset}`);
        assert.equal(res.status, 200, asset);
        assert.match(res.headers.get('content-type') ?? '', /javascript|css/, asset);
        assert.ok((await res.arrayBuffer()).byteLength > 0, asset);
      }

      // Off: GET /graphql is an ordinary GraphQL request, refused by CSRF prevention.
      assert.equal(prod.status, 400, 'no explorer in production by default');
      assert.doesNotMatch(prod.body, /graphiql/i);
      assert.equal((await fetch(`${servers[1].url}${assets[0]}`)).status, 404, 'nor its files');

      assert.equal(enabled.status, 200);
      assert.match(enabled.body, /graphiql\.min\.js/);
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  });

  it('leaves API requests to GET /graphql alone', async () => {
    const [server] = await startServers({});
    try {
      const res = await fetch(`${server.url}/graphql?query=${encodeURIComponent('{ __typename }')}`, {
        headers: { accept: 'application/json', 'apollo-require-preflight': 'true' },
      });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { data: { __typename: 'Query' } });
    } finally {
      await server.close();
    }
  });
});
