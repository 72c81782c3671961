import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startServer } from './helpers/server';

async function landingPage(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${url}/graphql`, { headers: { accept: 'text/html' } });
  return { status: res.status, body: await res.text() };
}

describe('GraphQL playground', () => {
  it('opens on an example operation in development, is off in production unless enabled', async () => {
    const dev = await startServer();
    try {
      const page = await landingPage(dev.url);
      assert.equal(page.status, 200);
      assert.match(page.body, /embeddable-sandbox|sandbox/i);
      assert.ok(page.body.includes('query Files'), 'the example operation is in the page');
    } finally {
      await dev.close();
    }

    const secret = { NODE_ENV: 'production', JWT_SECRET: 'p'.repeat(40) };
    const prod = await startServer(secret);
    try {
      const page = await landingPage(prod.url);
      assert.ok(!/sandbox/i.test(page.body), 'no playground in production by default');
    } finally {
      await prod.close();
    }

    const enabled = await startServer({ ...secret, GRAPHQL_PLAYGROUND: 'true' });
    try {
      assert.match((await landingPage(enabled.url)).body, /sandbox/i);
    } finally {
      await enabled.close();
    }
  });
});
