import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { outcome } from './helpers/assert';
import { LOGIN, md5, randomFile, tag, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { ADMIN, startServer, type TestServer } from './helpers/server';
import { expiredToken, randomSecret, signedToken, unsignedToken } from './helpers/tokens';
import { uploadFile } from './helpers/upload';

// The auth matrix (issue 4, "Security"), over real HTTP: every operation called by every kind
// of caller, with exactly the access API.md allows, and the effect there only when allowed.
// Error codes per operation live in the errors-*.test.ts files.

describe(`security: the auth matrix, every operation × every kind of caller (${databaseKind})`, () => {
  let server: TestServer;
  /** Shared and read-only: alice is the author of `aliceFile` and the owner of `aliceUpload`; bob is a plain user. */
  let alice: GraphQLClient;
  let bob: GraphQLClient;
  const ids = { user: '', admin: '', author: '' };
  let aliceUpload: { id: string };
  let aliceFile: { id: string; md5: string; downloadUrl: string };

  const count = async (query: string, params: unknown[] = []): Promise<number> => Number((await server.sql(query, params))[0].n);

  before(async () => {
    server = await startServer();
    [alice, bob] = await Promise.all([server.admin.newUser(), server.admin.newUser()]);
    const me = async (c: GraphQLClient) => (await c.data(`{ me { id } }`)).me.id as string;
    [ids.user, ids.admin, ids.author] = await Promise.all([me(bob), me(server.admin), me(alice)]);
    aliceUpload = await alice.start('in-progress.bin', 100);
    aliceFile = await uploadFile(alice, randomFile(1000), 'shared.txt');
  });
  after(() => server?.close());

  const BAD_TOKENS = [
    'no token',
    'expired token',
    'token signed with another secret',
    'alg: none token',
    'token of a deleted user',
    'download link used as a bearer token',
    'logged-out token',
    'token of a disabled user',
    'revoked access token',
    'expired access token',
  ] as const;
  const CALLERS = ['user', 'admin', 'author'] as const;
  type Caller = (typeof CALLERS)[number];
  type Identity = (typeof BAD_TOKENS)[number] | Caller;
  type Code = 'OK' | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'NOT_FOUND';
  interface Fixture {
    /** Calls as this client instead of the identity's (changePassword: a fresh account per call). */
    caller?: GraphQLClient;
    [key: string]: any;
  }
  interface Operation {
    name: string;
    /** [a plain user, an admin who is not the author/owner, the author/owner] */
    allowed: [user: Code, admin: Code, author: Code];
    /** What the bad tokens get; UNAUTHENTICATED unless the operation needs no token. */
    badToken?: Code;
    /** A fresh target for one call, made by the author (an upload to complete, a file to delete). */
    prepare?: (identity: Identity) => Promise<Fixture>;
    call(caller: GraphQLClient, fixture: Fixture): Promise<{ code: string; data?: any }>;
    /** Afterwards: the effect is there when allowed, nothing changed when refused. */
    verify?(allowed: boolean, identity: Identity, data: any, fixture: Fixture): Promise<void>;
  }

  const clients = {} as Record<Identity, GraphQLClient>;
  const gql = async (caller: GraphQLClient, query: string, variables: Record<string, unknown> = {}) => {
    const result = await caller.request(query, variables);
    return { code: outcome(result), data: result.data };
  };
  const uploadState = async (id: string) => alice.getUpload(id);
  let aliceToken: { id: string };
  /** A new account of its own, for an operation that ends the caller's token or the account. */
  const freshAccount = (isAdmin: boolean) => server.admin.newUser(`fresh_${tag()}`, isAdmin);
  const idOf = async (c: GraphQLClient) => (await c.data(`{ me { id } }`)).me.id as string;
  const fileExists = async (id: string) =>
    (await server.admin.data(`query($id: ID!) { file(id: $id) { id } }`, { id })).file !== null;

  // prettier-ignore
  const OPERATIONS: Operation[] = [
    // operation                            user          admin         author
    { name: 'login (needs no token)',       allowed: ['OK',         'OK',         'OK'], badToken: 'OK',
      call: (c) => gql(c, LOGIN, { u: ADMIN.username, p: ADMIN.password }),
      verify: async (ok, _, data) => { if (ok) assert.equal(data.login.user.id, ids.admin); } },
    { name: 'query me',                     allowed: ['OK',         'OK',         'OK'],
      call: (c) => gql(c, `{ me { id } }`),
      verify: async (ok, identity, data) => { if (ok) assert.equal(data.me.id, ids[identity as Caller], 'me is the caller'); } },
    { name: "query upload (author's)",      allowed: ['NOT_FOUND',  'NOT_FOUND',  'OK'],
      call: (c) => gql(c, `query($id: ID!) { upload(id: $id) { id status } }`, { id: aliceUpload.id }),
      verify: async (ok, _, data) => { if (ok) assert.equal(data.upload.id, aliceUpload.id); } },
    { name: 'query myUploads',              allowed: ['OK',         'OK',         'OK'],
      call: (c) => gql(c, `{ myUploads { id } }`),
      verify: async (ok, identity, data) => {
        if (ok) assert.equal(data.myUploads.some((u: any) => u.id === aliceUpload.id), identity === 'author', "only the owner's list holds the upload");
      } },
    { name: 'query file',                   allowed: ['OK',         'OK',         'OK'],
      call: (c) => gql(c, `query($id: ID!) { file(id: $id) { id } }`, { id: aliceFile.id }),
      verify: async (ok, _, data) => { if (ok) assert.equal(data.file.id, aliceFile.id); } },
    { name: 'query files',                  allowed: ['OK',         'OK',         'OK'],
      call: (c) => gql(c, `{ files(first: 100) { totalCount edges { node { id } } } }`),
      verify: async (ok, _, data) => { if (ok) assert.ok(data.files.edges.some((e: any) => e.node.id === aliceFile.id)); } },
    { name: 'query newestFile',             allowed: ['OK',         'OK',         'OK'],
      call: (c) => gql(c, `{ newestFile { id } }`),
      verify: async (ok, _, data) => { if (ok) assert.equal(data.newestFile.id, (await server.admin.data(`{ files(first: 1) { edges { node { id } } } }`)).files.edges[0].node.id, 'the head of the list'); } },
    { name: 'mutation startUpload',         allowed: ['OK',         'OK',         'OK'],
      prepare: async () => ({ before: await count(`select count(*) as n from chunked_uploads`) }),
      call: (c) => gql(c, `mutation { startUpload(input: { filename: "matrix.bin", totalSize: 10 }) { id status } }`),
      verify: async (ok, _, data, f) => {
        assert.equal(await count(`select count(*) as n from chunked_uploads`), f.before + (ok ? 1 : 0), 'an upload is created only when allowed');
        if (ok) assert.equal(data.startUpload.status, 'UPLOADING');
      } },
    { name: "mutation uploadChunk (multipart, author's upload)", allowed: ['NOT_FOUND', 'NOT_FOUND', 'OK'],
      prepare: async () => ({ upload: await alice.start('matrix-chunk.bin', 4) }),
      call: async (c, f) => { const r = await c.uploadChunk(f.upload.id, 0, Buffer.from('abcd')); return { code: outcome(r), data: r.data }; },
      verify: async (ok, _, data, f) => assert.equal((await uploadState(f.upload.id)).offset, ok ? 4 : 0, 'bytes are stored only when allowed') },
    { name: "mutation uploadPart (multipart, author's upload)", allowed: ['NOT_FOUND', 'NOT_FOUND', 'OK'],
      prepare: async () => ({ upload: (await alice.data(`mutation { startUpload(input: { filename: "matrix-part.bin", totalSize: 8, partSize: 4 }) { id } }`)).startUpload }),
      call: async (c, f) => { const r = await c.uploadPart(f.upload.id, 2, Buffer.from('efgh')); return { code: outcome(r), data: r.data }; },
      verify: async (ok, _, data, f) => assert.deepEqual(
        (await alice.data(`query($id: ID!) { upload(id: $id) { missingParts } }`, { id: f.upload.id })).upload.missingParts, ok ? [1] : [1, 2], 'a part is stored only when allowed') },
    { name: "mutation completeUpload (author's upload)", allowed: ['NOT_FOUND', 'NOT_FOUND', 'OK'],
      prepare: async () => {
        const upload = await alice.start('matrix-complete.bin', 4);
        assert.equal(outcome(await alice.uploadChunk(upload.id, 0, Buffer.from('wxyz'))), 'OK');
        return { upload };
      },
      call: async (c, f) => { const r = await c.complete(f.upload.id, md5(Buffer.from('wxyz'))); return { code: outcome(r), data: r.data }; },
      verify: async (ok, _, data, f) => assert.equal((await uploadState(f.upload.id)).status, ok ? 'COMPLETE' : 'UPLOADING') },
    { name: "mutation abortUpload (author's upload)", allowed: ['NOT_FOUND', 'NOT_FOUND', 'OK'],
      prepare: async () => ({ upload: await alice.start('matrix-abort.bin', 4) }),
      call: (c, f) => gql(c, `mutation($id: ID!) { abortUpload(uploadId: $id) { id status } }`, { id: f.upload.id }),
      verify: async (ok, _, data, f) => assert.equal((await uploadState(f.upload.id)).status, ok ? 'ABORTED' : 'UPLOADING') },
    { name: "mutation updateFile (author's file)", allowed: ['FORBIDDEN', 'OK',         'OK'],
      prepare: async (identity) => ({ description: `set by ${identity} ${tag()}` }),
      call: (c, f) => gql(c, `mutation($id: ID!, $d: String!) { updateFile(id: $id, description: $d) { id description } }`, { id: aliceFile.id, d: f.description }),
      verify: async (ok, _, data, f) => {
        const stored = (await server.admin.data(`query($id: ID!) { file(id: $id) { description } }`, { id: aliceFile.id })).file.description;
        assert.equal(stored === f.description, ok, 'the description changes only when allowed');
      } },
    { name: "mutation deleteFile (author's file)", allowed: ['FORBIDDEN', 'OK',         'OK'],
      prepare: async () => ({ file: await uploadFile(alice, randomFile(8), 'matrix-delete.bin') }),
      call: (c, f) => gql(c, `mutation($id: ID!) { deleteFile(id: $id) }`, { id: f.file.id }),
      verify: async (ok, _, data, f) => assert.equal(await fileExists(f.file.id), !ok, 'the file is gone only when allowed') },
    { name: 'query users (admin only)',     allowed: ['FORBIDDEN',  'OK',         'FORBIDDEN'],
      call: (c) => gql(c, `{ users(first: 200) { totalCount edges { node { id } } } }`),
      verify: async (ok, _, data) => { if (ok) assert.ok(data.users.edges.some((e: any) => e.node.id === ids.author)); } },
    { name: 'mutation createUser (admin only)', allowed: ['FORBIDDEN', 'OK',         'FORBIDDEN'],
      prepare: async () => ({ username: `made_${tag()}` }),
      call: (c, f) => gql(c, `mutation($u: String!) { createUser(username: $u, password: "password-123456") { id } }`, { u: f.username }),
      verify: async (ok, _, data, f) =>
        assert.equal(await count(`select count(*) as n from users where lower(username) = lower(?)`, [f.username]), ok ? 1 : 0) },
    { name: "mutation setUserQuota (admin only)", allowed: ['FORBIDDEN', 'OK',         'FORBIDDEN'],
      prepare: async () => ({ quota: 1_000_000 + Math.floor(Math.random() * 1_000_000) }),
      call: (c, f) => gql(c, `mutation($id: ID!, $q: SafeInt) { setUserQuota(userId: $id, quotaBytes: $q) { id quotaBytes } }`, { id: ids.user, q: f.quota }),
      verify: async (ok, _, data, f) =>
        assert.equal(await count(`select count(*) as n from users where id = ? and quota_bytes = ?`, [ids.user, f.quota]), ok ? 1 : 0, 'the quota changes only when allowed') },
    { name: 'mutation changePassword (own account)', allowed: ['OK',    'OK',         'OK'],
      prepare: async (identity) => {
        if (!(CALLERS as readonly string[]).includes(identity)) return { password: 'old-password-1' };
        // A fresh account of the right kind, so the shared callers keep their tokens.
        const username = `pw_${tag()}`;
        await server.admin.data(`mutation($u: String!, $a: Boolean) { createUser(username: $u, password: "old-password-1", isAdmin: $a) { id } }`,
          { u: username, a: identity === 'admin' });
        return { password: 'old-password-1', caller: await server.client.login(username, 'old-password-1') };
      },
      call: (c, f) => gql(c, `mutation($o: String!) { changePassword(oldPassword: $o, newPassword: "new-password-2") }`, { o: f.password }),
      verify: async (ok, _, data, f) => {
        if (!ok) return;
        assert.equal(data.changePassword, true);
        assert.equal(outcome(await f.caller!.request(`{ me { id } }`)), 'UNAUTHENTICATED', 'tokens from before the change stop working');
      } },
    { name: 'mutation logout (own token)', allowed: ['OK',         'OK',         'OK'],
      prepare: async (identity) => (CALLERS as readonly string[]).includes(identity) ? { caller: await freshAccount(identity === 'admin') } : {},
      call: (c) => gql(c, `mutation { logout }`),
      verify: async (ok, _, data, f) => { if (ok) assert.equal(outcome(await f.caller!.request(`{ me { id } }`)), 'UNAUTHENTICATED', 'the token is ended'); } },
    { name: 'mutation logoutEverywhere (own tokens)', allowed: ['OK', 'OK',       'OK'],
      prepare: async (identity) => (CALLERS as readonly string[]).includes(identity) ? { caller: await freshAccount(identity === 'admin') } : {},
      call: (c) => gql(c, `mutation { logoutEverywhere }`),
      verify: async (ok, _, data, f) => { if (ok) assert.equal(outcome(await f.caller!.request(`{ me { id } }`)), 'UNAUTHENTICATED', 'the token is ended'); } },
    { name: 'mutation updateUser (admin only)', allowed: ['FORBIDDEN', 'OK',         'FORBIDDEN'],
      prepare: async () => ({ target: await freshAccount(false) }),
      call: async (c, f) => gql(c, `mutation($id: ID!) { updateUser(id: $id, disabled: true) { id disabled } }`, { id: await idOf(f.target) }),
      verify: async (ok, _, data, f) => assert.equal(outcome(await f.target.request(`{ me { id } }`)), ok ? 'UNAUTHENTICATED' : 'OK', 'the user is disabled only when allowed') },
    { name: 'mutation deleteUser (admin only)', allowed: ['FORBIDDEN', 'OK',         'FORBIDDEN'],
      prepare: async () => { const target = await freshAccount(false); return { target, id: await idOf(target) }; },
      call: (c, f) => gql(c, `mutation($id: ID!) { deleteUser(id: $id) }`, { id: f.id }),
      verify: async (ok, _, data, f) => assert.equal(await count(`select count(*) as n from users where id = ?`, [f.id]), ok ? 0 : 1, 'the user is gone only when allowed') },
    { name: 'query myAccessTokens',         allowed: ['OK',         'OK',         'OK'],
      call: (c) => gql(c, `{ myAccessTokens { id name } }`),
      verify: async (ok, identity, data) => {
        if (ok) assert.equal(data.myAccessTokens.some((t: any) => t.id === aliceToken.id), identity === 'author', "only the owner's list holds the token");
      } },
    { name: 'mutation createAccessToken',   allowed: ['OK',         'OK',         'OK'],
      prepare: async () => ({ name: `matrix ${tag()}` }),
      call: (c, f) => gql(c, `mutation($n: String!) { createAccessToken(name: $n, scopes: [READ]) { token accessToken { id } } }`, { n: f.name }),
      verify: async (ok, _, data, f) => {
        assert.equal(await count(`select count(*) as n from access_tokens where name = ?`, [f.name]), ok ? 1 : 0);
        if (ok) assert.match(data.createAccessToken.token, /^ucs_/);
      } },
    { name: "mutation revokeAccessToken (author's token)", allowed: ['NOT_FOUND', 'NOT_FOUND', 'OK'],
      prepare: async () => ({ token: (await alice.data(`mutation { createAccessToken(name: "to revoke", scopes: [READ]) { accessToken { id } } }`)).createAccessToken.accessToken }),
      call: (c, f) => gql(c, `mutation($id: ID!) { revokeAccessToken(id: $id) }`, { id: f.token.id }),
      verify: async (ok, _, data, f) => assert.equal(await count(`select count(*) as n from access_tokens where id = ?`, [f.token.id]), ok ? 0 : 1) },
    { name: 'GET /files/:id/content',       allowed: ['OK',         'OK',         'OK'],
      call: async (c) => {
        const res = await c.download(`/files/${aliceFile.id}/content`);
        return { code: res.status === 200 ? 'OK' : JSON.parse(res.body.toString()).errors[0].extensions.code, data: { status: res.status, body: res.body } };
      },
      verify: async (ok, _, data) => {
        if (ok) assert.equal(md5(data.body), aliceFile.md5);
        else assert.equal(data.status, 401);
      } },
  ];

  before(async () => {
    const secret = server.app.services.config.jwtSecret;
    // Claims of a real, live user: only the defect named makes these tokens invalid.
    const claims = { sub: ids.author, ver: 0 };
    const ghost = await server.admin.newUser();
    const ghostId = (await ghost.data(`{ me { id } }`)).me.id;
    await server.sql('delete from users where id = ?', [ghostId]);
    const link = new URL(aliceFile.downloadUrl, server.url).searchParams.get('token')!;
    aliceToken = (await alice.data(`mutation { createAccessToken(name: "listed", scopes: [READ]) { accessToken { id } } }`)).createAccessToken.accessToken;
    const loggedOut = await server.admin.newUser();
    await loggedOut.data(`mutation { logout }`);
    const disabled = await server.admin.newUser();
    await server.admin.data(`mutation($id: ID!) { updateUser(id: $id, disabled: true) { id } }`, { id: await idOf(disabled) });
    const tokenOf = async (c: GraphQLClient) => (await c.data(`mutation { createAccessToken(name: "bad", scopes: [FULL]) { token accessToken { id } } }`)).createAccessToken;
    const revoked = await tokenOf(alice);
    await alice.data(`mutation($id: ID!) { revokeAccessToken(id: $id) }`, { id: revoked.accessToken.id });
    const expired = await tokenOf(alice);
    await server.sql(`update access_tokens set expires_at = now() - interval '1 minute' where id = ?`, [expired.accessToken.id]);
    Object.assign(clients, {
      'no token': server.client,
      'expired token': server.client.withToken(expiredToken(claims, secret)),
      'token signed with another secret': server.client.withToken(signedToken(claims, randomSecret())),
      'alg: none token': server.client.withToken(unsignedToken(claims)),
      'token of a deleted user': ghost,
      'download link used as a bearer token': server.client.withToken(link),
      'logged-out token': loggedOut,
      'token of a disabled user': disabled,
      'revoked access token': server.client.withToken(revoked.token),
      'expired access token': server.client.withToken(expired.token),
      user: bob,
      admin: server.admin,
      author: alice,
    } satisfies Record<Identity, GraphQLClient>);
  });

  it('control: a token crafted with the same claims but validly signed is accepted', async () => {
    const valid = server.client.withToken(signedToken({ sub: ids.author, ver: 0 }, server.app.services.config.jwtSecret));
    assert.equal((await valid.data(`{ me { id } }`)).me.id, ids.author);
  });

  for (const op of OPERATIONS) {
    describe(op.name, () => {
      for (const identity of [...BAD_TOKENS, ...CALLERS] as Identity[]) {
        const expected = (CALLERS as readonly string[]).includes(identity)
          ? op.allowed[CALLERS.indexOf(identity as Caller)]
          : (op.badToken ?? 'UNAUTHENTICATED');
        it(`${identity} → ${expected}`, async () => {
          const fixture = (await op.prepare?.(identity)) ?? {};
          const { code, data } = await op.call(fixture.caller ?? clients[identity], fixture);
          assert.equal(code, expected, `${op.name} as ${identity}: ${JSON.stringify(data)}`);
          await op.verify?.(code === 'OK', identity, data, fixture);
        });
      }
    });
  }
});
