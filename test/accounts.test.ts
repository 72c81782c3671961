import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createApp } from '../src/app';
import { loadConfig } from '../src/config';
import { expectCode } from './helpers/assert';
import { GraphQLClient, LOGIN, ME, randomFile, tag } from './helpers/client';
import { databaseKind, NEEDS_POSTGRES } from './helpers/database';
import { eventually } from './helpers/timing';
import { startServer, type TestServer } from './helpers/server';
import { DEFAULT_CHUNK_SIZE, sendChunks, uploadFile } from './helpers/upload';

const LOGOUT = `mutation { logout }`;
const LOGOUT_EVERYWHERE = `mutation { logoutEverywhere }`;
const UPDATE_USER = `mutation($id: ID!, $a: Boolean, $d: Boolean) { updateUser(id: $id, isAdmin: $a, disabled: $d) { id username isAdmin disabled } }`;
const DELETE_USER = `mutation($id: ID!) { deleteUser(id: $id) }`;
const CREATE_TOKEN = `mutation($n: String!, $s: [TokenScope!]!) { createAccessToken(name: $n, scopes: $s) { token accessToken { id } } }`;

/** A user with a known password, logged in. */
async function newAccount(server: TestServer, isAdmin = false): Promise<{ id: string; username: string; password: string; client: GraphQLClient }> {
  const username = `acct_${tag()}`;
  const password = `pw-${tag(8)}`;
  const { createUser } = await server.admin.data(`mutation($u: String!, $p: String!, $a: Boolean) { createUser(username: $u, password: $p, isAdmin: $a) { id } }`, {
    u: username,
    p: password,
    a: isAdmin,
  });
  return { id: createUser.id, username, password, client: await server.client.login(username, password) };
}

/** The partial-upload files on disk for an upload id. */
async function partFiles(server: TestServer, uploadId: string): Promise<string[]> {
  return (await readdir(path.join(server.dataDir, 'uploads'))).filter((name) => name.startsWith(uploadId));
}

describe(`accounts: logout, disabling and deleting users (${databaseKind})`, () => {
  let server: TestServer;

  before(async () => {
    server = await startServer();
  });
  after(() => server?.close());

  it('logout ends exactly the token of the request; the same user\'s other login tokens keep working', async () => {
    const alice = await newAccount(server);
    const other = await server.client.login(alice.username, alice.password);
    assert.equal(await alice.client.data(LOGOUT).then((d) => d.logout), true);
    expectCode(await alice.client.request(ME), 'UNAUTHENTICATED', 'the token logged out');
    expectCode(await alice.client.request(LOGOUT), 'UNAUTHENTICATED', 'logging out twice');
    assert.equal((await other.data(ME)).me.username, alice.username, 'another login of the same user');
    const revoked = await server.sql(`select token_id, expires_at from revoked_tokens`);
    assert.ok(revoked.length >= 1);
    assert.ok(revoked.every((row) => new Date(row.expires_at) > new Date()), 'a revocation lasts only as long as its token would');
  });

  it('logoutEverywhere ends every login token of the caller, not other users\' and not their access tokens', async () => {
    const bob = await newAccount(server);
    const bobElsewhere = await server.client.login(bob.username, bob.password);
    const carol = await newAccount(server);
    const { createAccessToken } = await bob.client.data(CREATE_TOKEN, { n: 'ci', s: ['READ'] });
    assert.equal((await bob.client.data(LOGOUT_EVERYWHERE)).logoutEverywhere, true);
    expectCode(await bob.client.request(ME), 'UNAUTHENTICATED');
    expectCode(await bobElsewhere.request(ME), 'UNAUTHENTICATED');
    assert.equal((await carol.client.data(ME)).me.username, carol.username);
    assert.equal((await server.client.withToken(createAccessToken.token).data(ME)).me.username, bob.username, 'the access token survives');
    // Logging in again gives a working token.
    assert.equal((await (await server.client.login(bob.username, bob.password)).data(ME)).me.username, bob.username);
  });

  it('a disabled user is out on the next request (login and access tokens), cannot log in, and is back when enabled', async () => {
    const dave = await newAccount(server);
    const { createAccessToken } = await dave.client.data(CREATE_TOKEN, { n: 'script', s: ['FULL'] });
    const script = server.client.withToken(createAccessToken.token);
    const file = await uploadFile(dave.client, randomFile(1000), `dave-${tag()}.bin`);

    const { updateUser } = await server.admin.data(UPDATE_USER, { id: dave.id, d: true });
    assert.deepEqual(updateUser, { id: dave.id, username: dave.username, isAdmin: false, disabled: true });
    expectCode(await dave.client.request(ME), 'UNAUTHENTICATED');
    expectCode(await script.request(ME), 'UNAUTHENTICATED');
    assert.equal((await script.download(`/files/${file.id}/content`)).status, 401);

    // The right password is answered exactly as a wrong one.
    const right = expectCode(await server.client.request(LOGIN, { u: dave.username, p: dave.password }), 'UNAUTHENTICATED');
    const wrong = expectCode(await server.client.request(LOGIN, { u: dave.username, p: 'not-the-password' }), 'UNAUTHENTICATED');
    assert.equal(right.message, wrong.message);

    // The files stay.
    assert.equal((await server.admin.data(`query($id: ID!) { file(id: $id) { author { id } } }`, { id: file.id })).file.author.id, dave.id);

    await server.admin.data(UPDATE_USER, { id: dave.id, d: false });
    assert.equal((await (await server.client.login(dave.username, dave.password)).data(ME)).me.username, dave.username);
    expectCode(await dave.client.request(ME), 'UNAUTHENTICATED', 'login tokens from before the disabling stay ended');
    assert.equal((await script.data(ME)).me.username, dave.username, 'access tokens only paused');
  });

  it('deleting a user keeps their files without an author, aborts their uploads and frees the bytes, and ends their tokens', async () => {
    const erin = await newAccount(server);
    const { createAccessToken } = await erin.client.data(CREATE_TOKEN, { n: 'nightly', s: ['UPLOAD'] });
    const bytes = randomFile(1000);
    const file = await uploadFile(erin.client, bytes, `erin-${tag()}.bin`);
    const partial = randomFile(3 * DEFAULT_CHUNK_SIZE);
    const upload = await erin.client.start(`erin-partial-${tag()}.bin`, partial.length);
    await sendChunks(erin.client, upload.id, partial, 0, 2 * DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE);
    assert.notDeepEqual(await partFiles(server, upload.id), [], 'the partial bytes are on disk before');

    assert.equal((await server.admin.data(DELETE_USER, { id: erin.id })).deleteUser, true);

    assert.deepEqual(await partFiles(server, upload.id), [], 'the partial bytes are gone');
    assert.deepEqual(await server.sql(`select id from chunked_uploads where owner_id = ?`, [erin.id]), []);
    expectCode(await erin.client.request(ME), 'UNAUTHENTICATED');
    expectCode(await server.client.withToken(createAccessToken.token).request(ME), 'UNAUTHENTICATED');
    assert.deepEqual(await server.sql(`select id from access_tokens where user_id = ?`, [erin.id]), []);
    expectCode(await server.client.request(LOGIN, { u: erin.username, p: erin.password }), 'UNAUTHENTICATED');
    const kept = await server.admin.data(`query($id: ID!) { file(id: $id) { id size author { id } } }`, { id: file.id });
    assert.deepEqual(kept.file, { id: file.id, size: bytes.length, author: null });
    assert.deepEqual((await server.admin.download(`/files/${file.id}/content`)).body, bytes);
    expectCode(await server.admin.request(DELETE_USER, { id: erin.id }), 'NOT_FOUND', 'deleting again');
    // The name is free again.
    await server.admin.newUser(erin.username);
  });

  it('only admins may change or delete users', async () => {
    const frank = await newAccount(server);
    const grace = await newAccount(server);
    expectCode(await frank.client.request(UPDATE_USER, { id: grace.id, d: true }), 'FORBIDDEN');
    expectCode(await frank.client.request(UPDATE_USER, { id: frank.id, a: true }), 'FORBIDDEN');
    expectCode(await frank.client.request(DELETE_USER, { id: grace.id }), 'FORBIDDEN');
    assert.equal((await grace.client.data(ME)).me.username, grace.username);
    expectCode(await server.admin.request(UPDATE_USER, { id: 'not-an-id', d: true }), 'NOT_FOUND');
  });

  it('the last admin cannot be demoted, disabled or deleted, even by two admins demoting each other at once', async () => {
    const admins = async () => Number((await server.sql(`select count(*) as n from users where is_admin and not disabled`))[0].n);
    const { me } = await server.admin.data(`{ me { id } }`);
    assert.equal(await admins(), 1);
    expectCode(await server.admin.request(UPDATE_USER, { id: me.id, a: false }), 'BAD_USER_INPUT');
    expectCode(await server.admin.request(UPDATE_USER, { id: me.id, d: true }), 'BAD_USER_INPUT');
    expectCode(await server.admin.request(DELETE_USER, { id: me.id }), 'BAD_USER_INPUT');
    assert.equal(await admins(), 1);

    const second = await newAccount(server, true);
    for (const change of [{ a: false }, { d: true }] as const) {
      const [one, two] = await Promise.all([
        server.admin.request(UPDATE_USER, { id: second.id, ...change }),
        second.client.request(UPDATE_USER, { id: me.id, ...change }),
      ]);
      // The loser is refused as the last admin's demotion, or (if the winner finished before it
      // was even authenticated) as a request by someone no longer an admin.
      const outcomes = [one, two].map((r) => r.errors?.[0]?.extensions?.code ?? 'ok');
      assert.equal(outcomes.filter((code) => code === 'ok').length, 1, JSON.stringify([one, two]));
      assert.ok(outcomes.every((code) => ['ok', 'BAD_USER_INPUT', 'FORBIDDEN', 'UNAUTHENTICATED'].includes(code)), JSON.stringify(outcomes));
      assert.equal(await admins(), 1, `one admin is left after ${JSON.stringify(change)}`);
      // Back to two admins for the next round, with fresh tokens (disabling ends them).
      const loser = one.errors ? me.id : second.id;
      await server.sql(`update users set is_admin = true, disabled = false where id = ?`, [loser]);
      if (loser === me.id) server.admin = await server.client.login('admin', server.env.ADMIN_PASSWORD);
      else second.client = await server.client.login(second.username, second.password);
    }
    // With another admin, the first one can go.
    await server.admin.data(UPDATE_USER, { id: second.id, a: false });
    assert.equal(await admins(), 1);
  });
});

describe('accounts on two instances of one database', { skip: NEEDS_POSTGRES }, () => {
  let server: TestServer;

  before(async () => {
    server = await startServer();
  });
  after(() => server?.close());

  // The other instance serves recent tokens from its authentication cache, which forgets them as
  // soon as the database's notification reaches it: a moment after the change, not at its commit.
  it("a disabled user's tokens fail on the other instance too, once it hears of it", async () => {
    // The second instance: same database and DATA_DIR (so the same signing key), its own process state.
    const second = await createApp(loadConfig(server.env), pino({ level: 'silent' }));
    try {
      const otherUrl = await second.listen(0, '127.0.0.1');
      const henry = await newAccount(server);
      const { createAccessToken } = await henry.client.data(CREATE_TOKEN, { n: 'elsewhere', s: ['READ'] });
      const onSecond = GraphQLClient.for(otherUrl);
      const login = onSecond.withToken(henry.client.token);
      const access = onSecond.withToken(createAccessToken.token);
      assert.equal((await login.data(ME)).me.username, henry.username);
      assert.equal((await access.data(ME)).me.username, henry.username);

      await server.admin.data(UPDATE_USER, { id: henry.id, d: true });
      await eventually(async () => expectCode(await login.request(ME), 'UNAUTHENTICATED'));
      await eventually(async () => expectCode(await access.request(ME), 'UNAUTHENTICATED'));

      // And logout on one instance counts on the other.
      const ivy = await newAccount(server);
      assert.equal((await onSecond.withToken(ivy.client.token).data(ME)).me.username, ivy.username);
      await ivy.client.data(LOGOUT);
      await eventually(async () => expectCode(await onSecond.withToken(ivy.client.token).request(ME), 'UNAUTHENTICATED'));
    } finally {
      await second.close();
    }
  });
});
