import type { AbstractSqlConnection } from '@mikro-orm/postgresql';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { LISTENER_APPLICATION_NAME } from '../src/events/listener';
import { AuthCache } from '../src/services/auth-cache';
import { expectCode } from './helpers/assert';
import { runCli, show } from './helpers/cli';
import { GraphQLClient, tag } from './helpers/client';
import { databaseKind, NEEDS_POSTGRES } from './helpers/database';
import { startServerBehindProxy, type PostgresProxy } from './helpers/postgres-proxy';
import { ProcessFixture, type ServerInstance } from './helpers/process';
import { startServer, startServers, type TestServer } from './helpers/server';
import { eventually, sleep } from './helpers/timing';

const ME = `{ me { id username isAdmin quotaBytes } }`;
const CREATE_USER = `mutation($u: String!, $p: String!) { createUser(username: $u, password: $p) { id } }`;
const CREATE_TOKEN = `mutation($n: String!, $s: [TokenScope!]!) { createAccessToken(name: $n, scopes: $s) { token accessToken { id } } }`;
const UPDATE_USER = `mutation($id: ID!, $a: Boolean, $d: Boolean) { updateUser(id: $id, isAdmin: $a, disabled: $d) { id } }`;
const SET_QUOTA = `mutation($id: ID!, $q: SafeInt) { setUserQuota(userId: $id, quotaBytes: $q) { id } }`;
const START = `mutation { startUpload(input: { filename: "x.bin", totalSize: 10 }) { id } }`;

/** The statements `AuthService.authenticate` reads a token's user with (a login token's, an access token's). */
const AUTH_READ = /from users u\s+where u\.id = |from access_tokens t join users u/;

interface Account {
  id: string;
  username: string;
  password: string;
  client: GraphQLClient;
}

/** A new user, logged in (the token has not been used yet, so nothing of it is cached). */
async function newAccount(admin: GraphQLClient, base: GraphQLClient): Promise<Account> {
  const username = `cache_${tag()}`;
  const password = `pw-${tag(8)}`;
  const { createUser } = await admin.data(CREATE_USER, { u: username, p: password });
  return { id: createUser.id, username, password, client: await base.login(username, password) };
}

/** Counts the authentication reads the server sends its database (knex's own query event, on every statement). */
function countAuthReads(server: TestServer): () => number {
  let reads = 0;
  const knex = (server.app.database.orm.em.getConnection() as AbstractSqlConnection).getKnex();
  knex.on('query', (query: { sql?: string }) => {
    if (AUTH_READ.test(query.sql ?? '')) reads++;
  });
  return () => reads;
}

/** `auth_cache_lookups_total` by result, from GET /metrics. */
async function lookups(url: string): Promise<Record<'hit' | 'miss' | 'bypass', number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (result: string) => Number(new RegExp(`^auth_cache_lookups_total\\{result="${result}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { hit: value('hit'), miss: value('miss'), bypass: value('bypass') };
}

/** A login token's id (its jti), as logout records it. */
const jtiOf = (token: string): string => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).jti;

describe(`authentication cache (${databaseKind})`, () => {
  let server: TestServer;
  let off: TestServer;
  let reads: () => number;

  before(async () => {
    [server, off] = await startServers({}, { AUTH_CACHE_TTL: '0' });
    reads = countAuthReads(server);
  });
  after(() => Promise.all([server?.close(), off?.close()]));

  /** Uses the token until a request of it is answered from memory (the first reads the database). */
  const warm = async (client: GraphQLClient) => {
    await client.data(ME);
    const before = reads();
    assert.equal((await client.data(ME)).me !== null, true);
    assert.equal(reads(), before, 'the second request is served from the cache');
  };

  it("serves a token's repeated requests from memory: one database read, then hits", async () => {
    const alice = await newAccount(server.admin, server.client);
    // The access token is made with the admin's token, so neither of alice's credentials has been used yet.
    const { createAccessToken } = await server.admin.data(CREATE_TOKEN, { n: 'script', s: ['READ'] });
    const access = server.client.withToken(createAccessToken.token);
    for (const [client, username] of [[alice.client, alice.username], [access, 'admin']] as const) {
      const [readsBefore, before] = [reads(), await lookups(server.url)];
      for (let i = 0; i < 5; i++) assert.equal((await client.data(ME)).me.username, username);
      const after = await lookups(server.url);
      assert.equal(reads() - readsBefore, 1, 'five requests, one read');
      assert.deepEqual([after.hit - before.hit, after.miss - before.miss, after.bypass - before.bypass], [4, 1, 0]);
    }
  });

  it('never keeps a failure: a refused token is read from the database every time', async () => {
    const bob = await newAccount(server.admin, server.client);
    await bob.client.data(`mutation { logout }`);
    const before = reads();
    for (let i = 0; i < 3; i++) expectCode(await bob.client.request(ME), 'UNAUTHENTICATED');
    assert.equal(reads() - before, 3);
  });

  it('a change through the API ends a cached token on the very next request of this instance', async () => {
    const changes: [string, (account: Account) => Promise<unknown>][] = [
      ['logout', (a) => a.client.data(`mutation { logout }`)],
      ['logoutEverywhere', (a) => a.client.data(`mutation { logoutEverywhere }`)],
      ['changePassword', (a) => a.client.data(`mutation($o: String!) { changePassword(oldPassword: $o, newPassword: "a-new-password-1") }`, { o: a.password })],
      ['updateUser(disabled)', (a) => server.admin.data(UPDATE_USER, { id: a.id, d: true })],
      ['deleteUser', (a) => server.admin.data(`mutation($id: ID!) { deleteUser(id: $id) }`, { id: a.id })],
    ];
    for (const [name, change] of changes) {
      const account = await newAccount(server.admin, server.client);
      await warm(account.client);
      await change(account);
      expectCode(await account.client.request(ME), 'UNAUTHENTICATED', name);
    }

    const carol = await newAccount(server.admin, server.client);
    const { createAccessToken } = await carol.client.data(CREATE_TOKEN, { n: 'ci', s: ['READ'] });
    const access = server.client.withToken(createAccessToken.token);
    await warm(access);
    await carol.client.data(`mutation($id: ID!) { revokeAccessToken(id: $id) }`, { id: createAccessToken.accessToken.id });
    expectCode(await access.request(ME), 'UNAUTHENTICATED', 'revokeAccessToken');
    // The login token of the same user is not affected by revoking one of their access tokens.
    assert.equal((await carol.client.data(ME)).me.username, carol.username);

    const { createAccessToken: second } = await carol.client.data(CREATE_TOKEN, { n: 'ci-2', s: ['READ'] });
    const selfRevoking = server.client.withToken(second.token);
    await warm(selfRevoking);
    await selfRevoking.data(`mutation { logout }`);
    expectCode(await selfRevoking.request(ME), 'UNAUTHENTICATED', 'logout with an access token');
  });

  it('a change made in the database directly (another process, an operator) ends cached tokens through the triggers', async () => {
    const sqlChanges: [string, (a: Account) => Promise<unknown>][] = [
      ['users.disabled', (a) => server.sql('update users set disabled = true where id = ?', [a.id])],
      ['users.token_version', (a) => server.sql('update users set token_version = token_version + 1 where id = ?', [a.id])],
      ['delete from users', (a) => server.sql('delete from users where id = ?', [a.id])],
      ['revoked_tokens', (a) => server.sql(`insert into revoked_tokens (token_id, expires_at) values (?, now() + interval '1 hour')`, [jtiOf(a.client.token!)])],
    ];
    for (const [name, change] of sqlChanges) {
      const account = await newAccount(server.admin, server.client);
      await warm(account.client);
      await change(account);
      await eventually(async () => expectCode(await account.client.request(ME), 'UNAUTHENTICATED', name));
    }

    const tokenChanges: [string, (id: string) => Promise<unknown>, string][] = [
      ['delete from access_tokens', (id) => server.sql('delete from access_tokens where id = ?', [id]), 'UNAUTHENTICATED'],
      ['access_tokens.expires_at', (id) => server.sql(`update access_tokens set expires_at = now() - interval '1 second' where id = ?`, [id]), 'UNAUTHENTICATED'],
      ['access_tokens.scopes', (id) => server.sql(`update access_tokens set scopes = '{READ}' where id = ?`, [id]), 'FORBIDDEN'],
    ];
    for (const [name, change, code] of tokenChanges) {
      const account = await newAccount(server.admin, server.client);
      const { createAccessToken } = await account.client.data(CREATE_TOKEN, { n: 'uploads', s: ['UPLOAD'] });
      const access = server.client.withToken(createAccessToken.token);
      await warm(access);
      assert.ok((await access.data(START)).startUpload.id);
      await change(createAccessToken.accessToken.id);
      await eventually(async () => expectCode(await access.request(START), code, name));
    }
  });

  it('a role or quota change is seen by `me` (the cached user is the whole row)', async () => {
    const dora = await newAccount(server.admin, server.client);
    await warm(dora.client);
    assert.deepEqual((await dora.client.data(ME)).me, { id: dora.id, username: dora.username, isAdmin: false, quotaBytes: null });
    await server.admin.data(SET_QUOTA, { id: dora.id, q: 5000 });
    assert.equal((await dora.client.data(ME)).me.quotaBytes, 5000, 'setUserQuota, on the next request');
    await server.admin.data(UPDATE_USER, { id: dora.id, a: true });
    assert.equal((await dora.client.data(ME)).me.isAdmin, true, 'updateUser(isAdmin), on the next request');
    await warm(dora.client);
    await server.sql('update users set quota_bytes = 7000 where id = ?', [dora.id]);
    await eventually(async () => assert.equal((await dora.client.data(ME)).me.quotaBytes, 7000, 'an UPDATE in SQL'));
  });

  it('is told ids only, and nothing for the lastUsedAt bookkeeping of access tokens', async () => {
    const payloads: string[] = [];
    const stop = await listenToAuthEvents(server, (payload) => payloads.push(payload));
    try {
      const erin = await newAccount(server.admin, server.client);
      const marker = await newAccount(server.admin, server.client);
      const { createAccessToken } = await erin.client.data(CREATE_TOKEN, { n: 'quiet', s: ['READ'] });
      await server.sql('update access_tokens set last_used_at = now() where id = ?', [createAccessToken.accessToken.id]);
      // Notifications arrive in commit order: once the marker's is here, one for the update above would have been too.
      await server.sql('update users set quota_bytes = 1 where id = ?', [marker.id]);
      await eventually(() => assert.deepEqual(payloads.map((p) => JSON.parse(p)), [{ userId: marker.id }]));

      await erin.client.data(`mutation { logout }`);
      await eventually(() => assert.deepEqual(JSON.parse(payloads.at(-1)!), { tokenId: jtiOf(erin.client.token!) }));
      await server.admin.data(`mutation($id: ID!) { deleteUser(id: $id) }`, { id: erin.id });
      await eventually(() => assert.deepEqual(JSON.parse(payloads.at(-1)!), { userId: erin.id }));
      for (const payload of payloads) {
        assert.ok(!payload.includes(createAccessToken.token) && !payload.includes(erin.client.token!), 'no secret in a notification');
      }
    } finally {
      await stop();
    }
  });

  it('AUTH_CACHE_TTL=0 turns it off: every request reads the database', async () => {
    const readsOff = countAuthReads(off);
    const frank = await newAccount(off.admin, off.client);
    const [readsBefore, before] = [readsOff(), await lookups(off.url)];
    for (let i = 0; i < 3; i++) await frank.client.data(ME);
    const after = await lookups(off.url);
    assert.equal(readsOff() - readsBefore, 3);
    assert.deepEqual([after.hit - before.hit, after.miss - before.miss, after.bypass - before.bypass], [0, 0, 3]);
  });
});

describe(`authentication cache and lastUsedAt (${databaseKind})`, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ AUTH_CACHE_TTL: '300' });
  });
  after(() => server?.close());

  it("still writes an access token's lastUsedAt (once a minute) when its requests are served from memory", async () => {
    const reads = countAuthReads(server);
    const { createAccessToken } = await server.admin.data(CREATE_TOKEN, { n: 'minutely', s: ['READ'] });
    const access = server.client.withToken(createAccessToken.token);
    const lastUsed = async () => {
      const [row] = await server.sql('select last_used_at from access_tokens where id = ?', [createAccessToken.accessToken.id]);
      return row.last_used_at === null ? null : new Date(row.last_used_at).getTime();
    };
    await access.data(ME);
    const first = await eventually(async () => (await lastUsed()) ?? assert.fail('the first use is recorded'));
    const readsAfterFirst = reads();
    // lastUsedAt is kept to the minute: past it, the next use writes it again.
    await sleep(61_000);
    await access.data(ME);
    assert.equal(reads(), readsAfterFirst, 'that use was served from the cache');
    await eventually(async () => assert.ok((await lastUsed())! >= first + 60_000, 'written again on a cache hit'));
  });
});

/** Payloads on `auth_events`, heard through a connection of the test's own (PostgreSQL) or the embedded database's listen. */
async function listenToAuthEvents(server: TestServer, onPayload: (payload: string) => void): Promise<() => Promise<void>> {
  const embedded = server.app.database.embedded;
  if (embedded) return embedded.listen('auth_events', onPayload);
  const client = new pg.Client({ connectionString: server.env.DATABASE_URL });
  await client.connect();
  client.on('notification', (message) => onPayload(message.payload ?? ''));
  await client.query('listen auth_events');
  return () => client.end();
}

describe('authentication cache while its listener is down (PostgreSQL)', { skip: NEEDS_POSTGRES }, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.close());

  it('serves nothing while the listening connection is lost, and starts empty once it is back', async () => {
    const reads = countAuthReads(server);
    const cache = server.app.services.authCache;
    const [gina, hank] = [await newAccount(server.admin, server.client), await newAccount(server.admin, server.client)];
    await eventually(() => assert.equal(cache.serving, true));
    for (const account of [gina, hank]) {
      await account.client.data(ME);
      const before = reads();
      await account.client.data(ME);
      assert.equal(reads(), before, 'served from the cache');
    }
    // Its connection ends as in a database restart: it reconnects after half a second.
    await server.sql('select pg_terminate_backend(pid) from pg_stat_activity where application_name = ? and datname = current_database()', [LISTENER_APPLICATION_NAME]);
    await eventually(() => assert.equal(cache.serving, false, 'the loss is noticed'));
    // Nobody hears this change (no listener); the next request must still see it.
    await server.sql('update users set disabled = true where id = ?', [gina.id]);
    expectCode(await gina.client.request(ME), 'UNAUTHENTICATED', 'a change made while the listener was down');
    await eventually(() => assert.equal(cache.serving, true, 'listening again'), 15_000);
    const before = reads();
    assert.equal((await hank.client.data(ME)).me.username, hank.username);
    assert.equal(reads() - before, 1, 'what was cached before the loss is not served after it');
  });
});

describe('authentication cache when its listening connection goes silent (PostgreSQL)', { skip: NEEDS_POSTGRES }, () => {
  let proxy: PostgresProxy;
  let server: TestServer;
  let close = async () => {};
  before(async () => {
    // Cached for five minutes: only finding the dead connection can end a revoked token sooner.
    ({ server, proxy, close } = await startServerBehindProxy({ AUTH_CACHE_TTL: '300' }));
  });
  after(() => close());

  it('finds the connection dead (no FIN, no RST), stops serving what it cached, and listens again', { timeout: 60_000 }, async () => {
    const reads = countAuthReads(server);
    const cache = server.app.services.authCache;
    const ivan = await newAccount(server.admin, server.client);
    await eventually(() => assert.equal(cache.serving, true));
    await ivan.client.data(ME);
    const before = reads();
    await ivan.client.data(ME);
    assert.equal(reads(), before, 'served from the cache');
    assert.equal(proxy.silence(LISTENER_APPLICATION_NAME), 1, 'the listening connection is silenced');
    // Its notification goes to a connection nobody reads any more.
    await server.sql('update users set disabled = true where id = ?', [ivan.id]);
    await eventually(async () => expectCode(await ivan.client.request(ME), 'UNAUTHENTICATED', 'the disabled user, once the silence is found out'), 30_000);
    await eventually(() => assert.equal(cache.serving, true, 'listening again on a new connection'), 30_000);
  });
});

describe('authentication cache on two instances of one database', { skip: NEEDS_POSTGRES }, () => {
  const fixture = new ProcessFixture();
  let a: ServerInstance;
  let b: ServerInstance;
  let onB: GraphQLClient;

  before(async () => {
    const database = await fixture.database();
    [a, b] = [await fixture.instance({}, undefined, database), await fixture.instance({}, undefined, database)];
    onB = GraphQLClient.for(b.url);
  });

  /** Uses the token on B until B answers it from memory (its hit counter moves). */
  const warmOnB = async (token: string) => {
    const client = onB.withToken(token);
    await client.data(ME);
    const before = (await lookups(b.url)).hit;
    await client.data(ME);
    assert.equal((await lookups(b.url)).hit - before, 1, 'served from B’s cache');
    return client;
  };

  it("a change made through instance A ends B's cached tokens, and B's `me` shows A's role and quota changes", async () => {
    const changes: [string, (account: Account) => Promise<unknown>][] = [
      ['logout', (x) => x.client.data(`mutation { logout }`)],
      ['logoutEverywhere', (x) => x.client.data(`mutation { logoutEverywhere }`)],
      ['updateUser(disabled)', (x) => a.admin.data(UPDATE_USER, { id: x.id, d: true })],
      ['deleteUser', (x) => a.admin.data(`mutation($id: ID!) { deleteUser(id: $id) }`, { id: x.id })],
    ];
    for (const [name, change] of changes) {
      const account = await newAccount(a.admin, a.base);
      const client = await warmOnB(account.client.token!);
      await change(account);
      await eventually(async () => expectCode(await client.request(ME), 'UNAUTHENTICATED', `${name} on A, seen on B`));
    }

    const ivy = await newAccount(a.admin, a.base);
    const { createAccessToken } = await ivy.client.data(CREATE_TOKEN, { n: 'b-side', s: ['READ'] });
    const access = await warmOnB(createAccessToken.token);
    await ivy.client.data(`mutation($id: ID!) { revokeAccessToken(id: $id) }`, { id: createAccessToken.accessToken.id });
    await eventually(async () => expectCode(await access.request(ME), 'UNAUTHENTICATED', 'revokeAccessToken on A, seen on B'));

    const jack = await newAccount(a.admin, a.base);
    const jackOnB = await warmOnB(jack.client.token!);
    await a.admin.data(SET_QUOTA, { id: jack.id, q: 12345 });
    await a.admin.data(UPDATE_USER, { id: jack.id, a: true });
    await eventually(async () => assert.deepEqual((await jackOnB.data(ME)).me, { id: jack.id, username: jack.username, isAdmin: true, quotaBytes: 12345 }));
  });

  it("a CLI command (another process) or an UPDATE in SQL ends B's cached tokens too", async () => {
    const kim = await newAccount(a.admin, a.base);
    const kimOnB = await warmOnB(kim.client.token!);
    const disabled = await runCli(['disable-user', kim.username], { NODE_ENV: 'test', DATA_DIR: a.dataDir, DATABASE_URL: a.databaseUrl! });
    assert.equal(disabled.code, 0, show(disabled));
    await eventually(async () => expectCode(await kimOnB.request(ME), 'UNAUTHENTICATED', 'upload-server disable-user'));

    const leo = await newAccount(a.admin, a.base);
    const leoOnB = await warmOnB(leo.client.token!);
    const sql = new pg.Client({ connectionString: a.databaseUrl });
    await sql.connect();
    try {
      await sql.query('update users set token_version = token_version + 1 where id = $1', [leo.id]);
    } finally {
      await sql.end();
    }
    await eventually(async () => expectCode(await leoOnB.request(ME), 'UNAUTHENTICATED', 'an UPDATE of users in SQL'));
  });
});

describe('AuthCache', () => {
  const entry = (userId: string, until?: number) => ({
    userRow: { id: userId },
    userId,
    tokenVersion: 0,
    credential: { kind: 'login' as const, tokenId: `t-${userId}`, expiresAt: new Date(Date.now() + 3_600_000) },
    until,
  });
  const listening = (capacity = 10) => {
    const cache = new AuthCache(30_000, undefined, undefined, capacity);
    cache.listenerConnected(true);
    return cache;
  };

  it('holds at most its capacity, letting the least recently used go first', () => {
    const cache = listening(3);
    for (const id of ['a', 'b', 'c']) cache.set(id, entry(id), cache.version);
    assert.ok(cache.get('a'), 'a is used: b is now the least recent');
    cache.set('d', entry('d'), cache.version);
    assert.equal(cache.size, 3);
    assert.equal(cache.get('b'), undefined);
    assert.deepEqual(['a', 'c', 'd'].map((key) => cache.get(key)?.userId), ['a', 'c', 'd']);
  });

  it('serves nothing past its time, nothing while not listening, and keeps no answer read before an invalidation', () => {
    const cache = listening();
    cache.set('expired', entry('x', Date.now() - 1), cache.version);
    assert.equal(cache.get('expired'), undefined);

    const version = cache.version;
    cache.invalidateUser('someone else');
    cache.set('raced', entry('y'), version);
    assert.equal(cache.get('raced'), undefined, 'a change heard while the read was on its way');

    cache.set('kept', entry('z'), cache.version);
    cache.listenerConnected(false);
    assert.equal(cache.serving, false);
    assert.equal(cache.get('kept'), undefined);
    cache.set('while down', entry('w'), cache.version);
    cache.listenerConnected(true);
    assert.equal(cache.size, 0, 'starts empty once listening again');

    const off = new AuthCache(0);
    off.listenerConnected(true);
    off.set('k', entry('k'), off.version);
    assert.equal(off.get('k'), undefined);
  });

  it('forgets a user’s entries and a revoked login token on notification; an unknown payload empties it', () => {
    const cache = listening();
    cache.set('login:t1', entry('u1'), cache.version);
    cache.set('access:h1', entry('u1'), cache.version);
    cache.set('login:t2', entry('u2'), cache.version);
    cache.set('login:t3', entry('u3'), cache.version);
    cache.notified(JSON.stringify({ userId: 'u1' }));
    assert.deepEqual([cache.get('login:t1'), cache.get('access:h1')], [undefined, undefined]);
    cache.notified(JSON.stringify({ tokenId: 't2' }));
    assert.equal(cache.get('login:t2'), undefined);
    assert.ok(cache.get('login:t3'));
    cache.notified('not json');
    assert.equal(cache.size, 0);
  });
});
