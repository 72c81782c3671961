import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { expectCode } from './helpers/assert';
import { tag } from './helpers/client';
import { databaseKind } from './helpers/database';
import { startServer, type TestServer } from './helpers/server';

const USERS = `query($first: Int, $after: String, $search: String) {
  users(first: $first, after: $after, search: $search) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id username isAdmin } } }
}`;

describe(`users: the admin's list of accounts (${databaseKind})`, () => {
  let server: TestServer;
  const prefix = `team_${tag()}`;
  const names = [1, 2, 3, 4, 5].map((n) => `${prefix}_${n}`);

  before(async () => {
    server = await startServer();
    // One after the other, so that creation order is the list's order.
    for (const name of names) await server.admin.newUser(name);
  });
  after(() => server?.close());

  it('pages through everyone, oldest first, the first admin at the top', async () => {
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const { users }: { users: any } = await server.admin.data(USERS, { first: 2, after });
      assert.equal(users.totalCount, names.length + 1);
      seen.push(...users.edges.map((e: any) => e.node.username));
      pages += 1;
      if (!users.pageInfo.hasNextPage) break;
      after = users.pageInfo.endCursor;
    }
    assert.equal(pages, 3);
    assert.deepEqual(seen, ['admin', ...names]);
  });

  it('searches a part of the username in any case, with % and _ taken literally', async () => {
    const { users } = await server.admin.data(USERS, { search: `${prefix.toUpperCase()}_3` });
    assert.deepEqual(users.edges.map((e: any) => e.node.username), [`${prefix}_3`]);
    assert.equal(users.totalCount, 1);
    assert.equal((await server.admin.data(USERS, { search: '%' })).users.totalCount, 0, '% matches only a literal %');
    assert.equal((await server.admin.data(USERS, { search: `${prefix}%` })).users.totalCount, 0);
  });

  it('refuses what it cannot page: a foreign cursor, a page over 200, a search longer than a username', async () => {
    expectCode(await server.admin.request(USERS, { after: 'not-a-cursor' }), 'BAD_USER_INPUT');
    expectCode(await server.admin.request(USERS, { first: 201 }), 'BAD_USER_INPUT');
    expectCode(await server.admin.request(USERS, { first: -1 }), 'BAD_USER_INPUT');
    expectCode(await server.admin.request(USERS, { search: 'x'.repeat(65) }), 'BAD_USER_INPUT');
  });
});
