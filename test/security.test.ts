import assert from 'node:assert/strict';
import { randomBytes, randomUUID, scryptSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { after, before, describe, it } from 'node:test';
import { md5, randomFile, UPLOAD_FIELDS, type GraphQLClient, type GraphQLResult } from './helpers/client';
import { databaseKind } from './helpers/database';
import { ADMIN, startServer, type TestServer } from './helpers/server';

// Security and hostile input (issue 4, "Security" and "Bad input"), over real HTTP:
// the auth matrix, login throttling, CSRF, CORS, security headers, production mode,
// query limits and injection strings. Error codes per operation live in errors.test.ts.

const APP_ORIGIN = 'https://app.example';
const EVIL_ORIGIN = 'https://evil.example';
const LOGIN = `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token user { id username } } }`;

/** "OK" for an answer without errors, else its error codes. */
function outcome(result: GraphQLResult): string {
  if (!result.errors?.length) return 'OK';
  return result.errors.map((e) => e.extensions?.code ?? `no code: ${e.message}`).join(',');
}

function assertRateLimited(result: GraphQLResult): number {
  assert.equal(outcome(result), 'RATE_LIMITED', JSON.stringify(result.errors ?? result.data));
  const retryAfter = result.errors![0].extensions!.retryAfter;
  assert.equal(typeof retryAfter, 'number', `retryAfter is a number of seconds: ${JSON.stringify(retryAfter)}`);
  assert.ok((retryAfter as number) > 0, `retryAfter ${retryAfter} > 0`);
  assert.ok((retryAfter as number) <= 900, `retryAfter ${retryAfter} <= 900: the lock is temporary, at most 15 minutes`);
  return retryAfter as number;
}

/** A JWT with `alg: none` and no signature, built by hand. */
function unsignedToken(claims: object): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.`;
}

/** A GraphQL multipart chunk request, without the helper's apollo-require-preflight header. */
function chunkForm(uploadId: string, offset: number, bytes: Buffer): FormData {
  const form = new FormData();
  form.append(
    'operations',
    JSON.stringify({
      query: `mutation($id: ID!, $offset: SafeInt!, $chunk: Upload!) { uploadChunk(uploadId: $id, offset: $offset, chunk: $chunk) { offset } }`,
      variables: { id: uploadId, offset, chunk: null },
    }),
  );
  form.append('map', JSON.stringify({ 0: ['variables.chunk'] }));
  form.append('0', new Blob([bytes]), 'chunk.bin');
  return form;
}

async function healthy(url: string): Promise<void> {
  assert.equal((await fetch(`${url}/healthz`)).status, 200, '/healthz answers 200');
}

/** API.md "Filenames": what startUpload stores for a given name, undefined where it answers BAD_USER_INPUT. */
function cleanedName(raw: string): string | undefined {
  const base = raw.slice(Math.max(raw.lastIndexOf('/'), raw.lastIndexOf('\\')) + 1);
  const name = base.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').normalize('NFC');
  return name === '' || name === '.' || name === '..' || Buffer.byteLength(name) > 255 ? undefined : name;
}

/** Runs `check` for every entry and reports every failing one at once, not just the first. */
async function forEach<T extends [string, ...unknown[]]>(table: T[], check: (...row: T) => Promise<void>): Promise<void> {
  const failures: string[] = [];
  for (const row of table) {
    try {
      await check(...row);
    } catch (err) {
      failures.push(`${row[0]}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  assert.deepEqual(failures, [], `\n${failures.join('\n')}`);
}

describe(`security (${databaseKind})`, () => {
  /** Default configuration: no CORS origins, introspection on (not production). */
  let server: TestServer;
  /** NODE_ENV=production with CORS_ORIGINS=https://app.example. */
  let production: TestServer;
  /** NODE_ENV=production with GRAPHQL_INTROSPECTION=true; its one client address gets blocked by the address limit. */
  let lockedOut: TestServer;

  let alice: GraphQLClient; // author of `aliceFile`, owner of `aliceUpload`
  let bob: GraphQLClient; // a plain user
  const ids = { user: '', admin: '', author: '' };
  let aliceUpload: { id: string };
  let aliceFile: { id: string; md5: string; downloadUrl: string };

  const sql = (query: string, params: unknown[] = []): Promise<any[]> =>
    server.app.database.orm.em.getConnection().execute(query, params);
  const count = async (query: string, params: unknown[] = []): Promise<number> => Number((await sql(query, params))[0].n);

  before(async () => {
    const started = await Promise.allSettled([
      startServer(),
      startServer({ NODE_ENV: 'production', JWT_SECRET: 'p'.repeat(40), CORS_ORIGINS: APP_ORIGIN }),
      startServer({ NODE_ENV: 'production', JWT_SECRET: 'q'.repeat(40), GRAPHQL_INTROSPECTION: 'true' }),
    ]);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) {
      await Promise.all(started.map((r) => r.status === 'fulfilled' && r.value.close()));
      throw failed.reason;
    }
    [server, production, lockedOut] = started.map((r) => (r as PromiseFulfilledResult<TestServer>).value);
    [alice, bob] = await Promise.all([server.admin.newUser(), server.admin.newUser()]);
    const me = async (c: GraphQLClient) => (await c.data(`{ me { id } }`)).me.id as string;
    [ids.user, ids.admin, ids.author] = await Promise.all([me(bob), me(server.admin), me(alice)]);
    aliceUpload = await alice.start('in-progress.bin', 100);
    aliceFile = await alice.uploadFile(randomFile(1000), 'shared.txt');
  });
  after(() => Promise.all([server?.close(), production?.close(), lockedOut?.close()]));

  describe('auth matrix: every operation × every kind of caller', () => {
    const BAD_TOKENS = [
      'no token',
      'expired token',
      'token signed with another secret',
      'alg: none token',
      'token of a deleted user',
      'download link used as a bearer token',
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
        verify: async (ok, _, data) => { if (ok) assert.notEqual(data.newestFile, null); } },
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
        prepare: async (identity) => ({ description: `set by ${identity} ${randomBytes(4).toString('hex')}` }),
        call: (c, f) => gql(c, `mutation($id: ID!, $d: String!) { updateFile(id: $id, description: $d) { id description } }`, { id: aliceFile.id, d: f.description }),
        verify: async (ok, _, data, f) => {
          const stored = (await server.admin.data(`query($id: ID!) { file(id: $id) { description } }`, { id: aliceFile.id })).file.description;
          assert.equal(stored === f.description, ok, 'the description changes only when allowed');
        } },
      { name: "mutation deleteFile (author's file)", allowed: ['FORBIDDEN', 'OK',         'OK'],
        prepare: async () => ({ file: await alice.uploadFile(randomFile(8), 'matrix-delete.bin') }),
        call: (c, f) => gql(c, `mutation($id: ID!) { deleteFile(id: $id) }`, { id: f.file.id }),
        verify: async (ok, _, data, f) => assert.equal(await fileExists(f.file.id), !ok, 'the file is gone only when allowed') },
      { name: 'mutation createUser (admin only)', allowed: ['FORBIDDEN', 'OK',         'FORBIDDEN'],
        prepare: async () => ({ username: `made_${randomBytes(4).toString('hex')}` }),
        call: (c, f) => gql(c, `mutation($u: String!) { createUser(username: $u, password: "password-123456") { id } }`, { u: f.username }),
        verify: async (ok, _, data, f) =>
          assert.equal(await count(`select count(*) as n from users where lower(username) = lower(?)`, [f.username]), ok ? 1 : 0) },
      { name: 'mutation changePassword (own account)', allowed: ['OK',    'OK',         'OK'],
        prepare: async (identity) => {
          if (!(CALLERS as readonly string[]).includes(identity)) return { password: 'old-password-1' };
          // A fresh account of the right kind, so the shared callers keep their tokens.
          const username = `pw_${randomBytes(4).toString('hex')}`;
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
      const now = Math.floor(Date.now() / 1000);
      // Claims of a real, live user: only the defect named makes these tokens invalid.
      const claims = { sub: ids.author, ver: 0 };
      const ghost = await server.admin.newUser();
      const ghostId = (await ghost.data(`{ me { id } }`)).me.id;
      await sql('delete from users where id = ?', [ghostId]);
      const link = new URL(aliceFile.downloadUrl, server.url).searchParams.get('token')!;
      Object.assign(clients, {
        'no token': server.client,
        'expired token': server.client.withToken(jwt.sign({ ...claims, iat: now - 7200, exp: now - 3600 }, secret, { algorithm: 'HS256' })),
        'token signed with another secret': server.client.withToken(
          jwt.sign(claims, randomBytes(48).toString('base64url'), { algorithm: 'HS256', expiresIn: 3600 }),
        ),
        'alg: none token': server.client.withToken(unsignedToken({ ...claims, iat: now, exp: now + 3600 })),
        'token of a deleted user': ghost,
        'download link used as a bearer token': server.client.withToken(link),
        user: bob,
        admin: server.admin,
        author: alice,
      } satisfies Record<Identity, GraphQLClient>);
    });

    it('control: a token crafted with the same claims but validly signed is accepted', async () => {
      const valid = server.client.withToken(jwt.sign({ sub: ids.author, ver: 0 }, server.app.services.config.jwtSecret, { algorithm: 'HS256', expiresIn: 3600 }));
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

  describe('login throttling', () => {
    const login = (username: string, password: string, client = server.client) => client.request(LOGIN, { u: username, p: password });
    /** An account made by the admin; returns its password. */
    async function account(username: string, target = server): Promise<string> {
      const password = `pw-${randomBytes(6).toString('hex')}`;
      await target.admin.data(`mutation($u: String!, $p: String!) { createUser(username: $u, password: $p) { id } }`, { u: username, p: password });
      return password;
    }

    it('5 wrong passwords lock the username: the 6th attempt, even right, is RATE_LIMITED, for at most 15 minutes', async () => {
      const password = await account('victim');
      const session = await server.client.login('victim', password);
      for (let i = 1; i <= 5; i++) assert.equal(outcome(await login('victim', `wrong-${i}`)), 'UNAUTHENTICATED', `failure ${i}`);
      const first = assertRateLimited(await login('victim', password));
      for (const variant of ['VICTIM', '  Victim ']) assertRateLimited(await login(variant, password));
      for (let i = 0; i < 3; i++) {
        const later = assertRateLimited(await login('victim', 'still-wrong'));
        assert.ok(later <= first, `hammering a locked username does not extend the lock (${later} s > ${first} s)`);
      }
      assert.equal((await session.data(`{ me { username } }`)).me.username, 'victim', 'sessions from before the lock keep working');
    });

    it('a locked username does not lock out other usernames from the same address', async () => {
      const password = await account('bystander');
      assertRateLimited(await login('victim', 'wrong')); // still locked
      assert.equal(outcome(await login('bystander', 'wrong')), 'UNAUTHENTICATED', 'one failure for another username is not throttled');
      const ok = await login('bystander', password);
      assert.equal(outcome(ok), 'OK', JSON.stringify(ok.errors));
      assert.equal(ok.data.login.user.username, 'bystander');
    });

    it('a correct login resets the count: 4 failures, success, 4 failures is not throttled', async () => {
      const password = await account('resetter');
      for (let round = 1; round <= 2; round++) {
        for (let i = 1; i <= 4; i++) assert.equal(outcome(await login('resetter', 'wrong')), 'UNAUTHENTICATED', `round ${round}, failure ${i}`);
        assert.equal(outcome(await login('resetter', password)), 'OK', `round ${round}: the right password after 4 failures`);
      }
    });

    it('a password hashed with older scrypt parameters still logs in, and is re-hashed with the current ones', async () => {
      const password = await account('oldhash');
      // What an earlier version stored: scrypt N=2^15, r=8, p=1 (32 MiB).
      const salt = randomBytes(16);
      const key = scryptSync(password.normalize('NFKC'), salt, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
      const oldHash = ['scrypt', 2 ** 15, 8, 1, salt.toString('base64'), key.toString('base64')].join('$');
      await sql(`update users set password_hash = ? where username = 'oldhash'`, [oldHash]);
      assert.equal(outcome(await login('oldhash', 'wrong')), 'UNAUTHENTICATED');
      assert.equal((await sql(`select password_hash from users where username = 'oldhash'`))[0].password_hash, oldHash, 'a failed login changes nothing');
      assert.equal(outcome(await login('oldhash', password)), 'OK');
      const [{ password_hash: upgraded }] = await sql(`select password_hash from users where username = 'oldhash'`);
      assert.match(upgraded, /^scrypt\$8192\$8\$10\$/);
      assert.equal(outcome(await login('oldhash', password)), 'OK', 'the upgraded hash verifies');
      assert.equal(outcome(await login('oldhash', 'wrong')), 'UNAUTHENTICATED');
    });

    it('50 failures from one address over different usernames block that address; X-Forwarded-For does not get around it', async () => {
      const client = lockedOut.client;
      const attempt = (i: number) =>
        client.request(LOGIN, { u: `nobody_${i}`, p: 'wrong-password' }, { 'x-forwarded-for': `203.0.113.${i}` }).then(outcome);
      const codes: string[] = [];
      // 45 in parallel batches (none of them can reach the limit), the last 5 one by one.
      for (let i = 1; i <= 45; i += 5) codes.push(...(await Promise.all([0, 1, 2, 3, 4].map((k) => attempt(i + k)))));
      for (let i = 46; i <= 50; i++) codes.push(await attempt(i));
      assert.deepEqual(codes, Array(50).fill('UNAUTHENTICATED'), 'at least 50 failures before the address is throttled');
      assertRateLimited(await client.request(LOGIN, { u: 'nobody_51', p: 'wrong-password' }, { 'x-forwarded-for': '198.51.100.7' }));
      assertRateLimited(await client.request(LOGIN, { u: 'nobody_52', p: 'wrong-password' }));
      assert.equal((await lockedOut.admin.data(`{ me { username } }`)).me.username, ADMIN.username, 'issued tokens keep working');
      await healthy(lockedOut.url);
    });
  });

  describe('CSRF prevention', () => {
    const description = async () =>
      (await server.admin.data(`query($id: ID!) { file(id: $id) { description } }`, { id: aliceFile.id })).file.description as string;

    it('refuses a multipart request without apollo-require-preflight (400) and stores nothing', async () => {
      const upload = await alice.start('csrf.bin', 4);
      const res = await fetch(`${server.url}/graphql`, { method: 'POST', headers: alice.authHeaders(), body: chunkForm(upload.id, 0, Buffer.from('evil')) });
      assert.equal(res.status, 400);
      const body = (await res.json()) as any;
      assert.equal(body.data, undefined);
      assert.equal(body.errors[0].extensions.code, 'BAD_REQUEST');
      assert.equal((await alice.getUpload(upload.id)).offset, 0, 'offset unchanged');
      // The same request with the header goes through: the header is what made the difference.
      const allowed = await fetch(`${server.url}/graphql`, {
        method: 'POST',
        headers: { ...alice.authHeaders(), 'apollo-require-preflight': 'true' },
        body: chunkForm(upload.id, 0, Buffer.from('good')),
      });
      assert.equal(allowed.status, 200);
      assert.equal((await alice.getUpload(upload.id)).offset, 4);
    });

    it('refuses a JSON body sent as text/plain or as a form (simple requests), running nothing', async () => {
      const before = await description();
      const body = JSON.stringify({ query: `mutation($id: ID!) { updateFile(id: $id, description: "csrf") { id } }`, variables: { id: aliceFile.id } });
      for (const contentType of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded']) {
        const res = await fetch(`${server.url}/graphql`, { method: 'POST', headers: { ...alice.authHeaders(), 'content-type': contentType }, body });
        assert.equal(res.status, 400, contentType);
        const json = (await res.json()) as any;
        assert.equal(json.errors[0].extensions.code, 'BAD_REQUEST', contentType);
        assert.match(json.errors[0].message, /CSRF/, contentType);
      }
      assert.equal(await description(), before, 'the mutation did not run');
    });

    it('refuses a mutation sent as GET /graphql?query=…, with or without the preflight header', async () => {
      const before = await description();
      const url = `${server.url}/graphql?query=${encodeURIComponent(`mutation { updateFile(id: "${aliceFile.id}", description: "via GET") { id } }`)}`;
      const plain = await fetch(url, { headers: alice.authHeaders() });
      assert.equal(plain.status, 400, 'CSRF prevention: a GET without a preflight header');
      const preflighted = await fetch(url, { headers: { ...alice.authHeaders(), 'apollo-require-preflight': 'true' } });
      assert.equal(preflighted.status, 405, 'mutations only over POST');
      assert.equal(await description(), before, 'the mutation did not run');
    });
  });

  describe('CORS', () => {
    const preflight = (url: string, origin: string, path = '/graphql') =>
      fetch(`${url}${path}`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type,apollo-require-preflight' },
      });
    const post = (target: TestServer, origin: string) =>
      fetch(`${target.url}/graphql`, {
        method: 'POST',
        headers: { origin, 'content-type': 'application/json', ...target.admin.authHeaders() },
        body: JSON.stringify({ query: '{ me { id } }' }),
      });

    it('by default allows no foreign origin: no Access-Control-Allow-* headers', async () => {
      for (const res of [
        await preflight(server.url, EVIL_ORIGIN),
        await preflight(server.url, APP_ORIGIN),
        await post(server, EVIL_ORIGIN),
        await fetch(`${server.url}/files/${aliceFile.id}/content`, { headers: { origin: EVIL_ORIGIN, ...alice.authHeaders() } }),
      ]) {
        assert.equal(res.headers.get('access-control-allow-origin'), null);
        assert.equal(res.headers.get('access-control-allow-headers'), null);
        assert.equal(res.headers.get('access-control-allow-credentials'), null);
      }
    });

    it('CORS_ORIGINS allows the listed origin, with the headers uploads need', async () => {
      const res = await preflight(production.url, APP_ORIGIN);
      assert.ok(res.status >= 200 && res.status < 300, `preflight status ${res.status}`);
      assert.equal(res.headers.get('access-control-allow-origin'), APP_ORIGIN);
      const headers = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(',').map((h) => h.trim());
      for (const h of ['authorization', 'content-type', 'apollo-require-preflight']) assert.ok(headers.includes(h), `allows ${h}: ${headers}`);
      assert.match(res.headers.get('access-control-allow-methods') ?? '', /\bPOST\b/);
      assert.match(res.headers.get('vary') ?? '', /origin/i, 'Vary: Origin, so caches keep answers per origin');
      const answer = await post(production, APP_ORIGIN);
      assert.equal(answer.status, 200);
      assert.equal(answer.headers.get('access-control-allow-origin'), APP_ORIGIN);
      const download = await preflight(production.url, APP_ORIGIN, `/files/${randomUUID()}/content`);
      assert.equal(download.headers.get('access-control-allow-origin'), APP_ORIGIN, 'downloads too');
    });

    it('with CORS_ORIGINS, any other origin gets no allow header (and never *)', async () => {
      for (const origin of [EVIL_ORIGIN, 'https://app.example.evil.example', 'http://app.example', 'null']) {
        for (const res of [await preflight(production.url, origin), await post(production, origin)]) {
          assert.equal(res.headers.get('access-control-allow-origin'), null, `origin ${origin}`);
        }
      }
    });
  });

  describe('security headers', () => {
    it('every kind of response carries helmet headers and no X-Powered-By', async () => {
      const responses: [string, Response][] = [
        ['GET /healthz', await fetch(`${server.url}/healthz`)],
        ['POST /graphql', await fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' })],
        ['POST /graphql refused', await fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' })],
        ['GET a download', await fetch(`${server.url}/files/${aliceFile.id}/content`, { headers: alice.authHeaders() })],
        ['GET a download without a token', await fetch(`${server.url}/files/${aliceFile.id}/content`)],
        ['GET an unknown path', await fetch(`${server.url}/no/such/path`)],
      ];
      for (const [what, res] of responses) {
        await res.arrayBuffer();
        const h = res.headers;
        assert.equal(h.get('x-content-type-options'), 'nosniff', what);
        assert.equal(h.get('x-powered-by'), null, what);
        assert.match(h.get('x-frame-options') ?? '', /^(DENY|SAMEORIGIN)$/, what);
        assert.match(h.get('strict-transport-security') ?? '', /max-age=\d+/, what);
        assert.equal(h.get('referrer-policy'), 'no-referrer', what);
        assert.ok(h.get('cross-origin-opener-policy'), `${what}: Cross-Origin-Opener-Policy`);
        assert.ok(h.get('cross-origin-resource-policy'), `${what}: Cross-Origin-Resource-Policy`);
      }
    });

    it('serves an uploaded HTML page as an attachment, never rendered in the API origin', async () => {
      const file = await alice.uploadFile(Buffer.from('<script>alert(document.domain)</script>'), 'page.html');
      assert.equal(file.mimeType, 'text/html');
      for (const res of [await alice.download(`/files/${file.id}/content`), await server.client.download(file.downloadUrl, {}, false)]) {
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-disposition') ?? '', /^attachment;/);
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      }
    });

    it('the browser page at / is served with a Content-Security-Policy', async () => {
      const res = await fetch(`${server.url}/`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/html/);
      await res.arrayBuffer();
      assert.match(res.headers.get('content-security-policy') ?? '', /default-src|script-src/, 'the page that holds the bearer token limits where scripts come from');
    });
  });

  describe('production mode', () => {
    it('refuses introspection; ordinary queries and __typename still work', async () => {
      for (const query of ['{ __schema { types { name } } }', '{ __type(name: "File") { fields { name } } }']) {
        const result = await production.admin.request(query);
        assert.equal(result.status, 400, query);
        assert.equal(result.data ?? null, null, query);
        assert.equal(outcome(result), 'GRAPHQL_VALIDATION_FAILED', query);
      }
      const { me, __typename } = await production.admin.data(`{ __typename me { username } }`);
      assert.equal(__typename, 'Query');
      assert.equal(me.username, ADMIN.username);
    });

    it('GRAPHQL_INTROSPECTION=true turns introspection back on', async () => {
      const { __schema } = await lockedOut.admin.data(`{ __schema { types { name } } }`);
      const names = __schema.types.map((t: any) => t.name);
      for (const type of ['File', 'ChunkedUpload', 'User']) assert.ok(names.includes(type), type);
    });

    it('hides field suggestions, which would reveal the schema piece by piece', async () => {
      const result = await production.admin.request(`{ fils { totalCount } }`);
      assert.equal(outcome(result), 'GRAPHQL_VALIDATION_FAILED');
      assert.doesNotMatch(result.errors![0].message, /Did you mean|"files"/);
    });

    it('errors carry only message, locations, path and extensions.code: no stack trace, no SQL', async () => {
      const json = (body: unknown, headers: Record<string, string> = {}) => ({
        method: 'POST',
        headers: { 'content-type': 'application/json', ...production.admin.authHeaders(), ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
      const badOperations = new FormData();
      badOperations.append('operations', '{ not json');
      badOperations.append('map', '{}');
      // [what, path, request, whether it must be an error (NUL may also be answered as plain data)]
      const cases: [string, string, RequestInit, boolean][] = [
        ['a validation error', '/graphql', json({ query: '{ me { id nope } }' }), true],
        ['a syntax error', '/graphql', json({ query: '{ me { id ' }), true],
        ['a variable of the wrong type', '/graphql', json({ query: 'query($n: Int) { files(first: $n) { totalCount } }', variables: { n: 'many' } }), true],
        ['no token', '/graphql', json({ query: '{ me { id } }' }, { authorization: '' }), true],
        ['a forged token', '/graphql', json({ query: '{ me { id } }' }, { authorization: `Bearer ${unsignedToken({ sub: randomUUID(), ver: 0 })}` }), true],
        ['an unknown upload', '/graphql', json({ query: `{ upload(id: "${randomUUID()}") { id } }` }), true],
        ['a string PostgreSQL cannot store (NUL)', '/graphql', json({ query: 'query($s: String) { files(search: $s) { totalCount } }', variables: { s: 'a\u0000b' } }), false],
        ['a malformed JSON body', '/graphql', json('{"query": '), true],
        ['malformed multipart', '/graphql', { method: 'POST', headers: { 'apollo-require-preflight': 'true', ...production.admin.authHeaders() }, body: badOperations }, true],
        ['a download of an unknown file', `/files/${randomUUID()}/content`, { headers: production.admin.authHeaders() }, true],
      ];
      await forEach(cases, async (label, path, init, mustFail) => {
        const res = await fetch(`${production.url}${path}`, init);
        const text = await res.text();
        assert.doesNotMatch(text, /\n\s+at |node_modules|\/src\/|\.[jt]s:\d+/, 'no stack trace');
        assert.doesNotMatch(text, /\b(select|insert into|update "?\w+"? set|delete from)\b|relation "|syntax error at or near|invalid byte sequence|\bpg_/i, 'no SQL');
        const body = JSON.parse(text);
        if (!mustFail && body.errors === undefined) return;
        assert.ok(Array.isArray(body.errors) && body.errors.length > 0, 'an error answer');
        for (const error of body.errors) {
          assert.deepEqual(Object.keys(error).filter((k) => !['message', 'locations', 'path', 'extensions'].includes(k)), []);
          assert.equal(typeof error.message, 'string');
          assert.deepEqual(Object.keys(error.extensions), ['code'], `extensions: ${JSON.stringify(error.extensions)}`);
        }
      });
      await healthy(production.url);
    });
  });

  describe('query limits', () => {
    const nest = (levels: number, wrap: (inner: string) => string, inner: string) => {
      let selection = inner;
      for (let i = 0; i < levels; i++) selection = wrap(selection);
      return selection;
    };
    const heavy = (i: number) => `a${i}: files(first: 100) { edges { node { id name size md5 author { id username isAdmin createdAt } } } }`;
    const REFUSED: [string, unknown][] = [
      ['depth 14 through nested inline fragments', { query: `{ ${nest(12, (s) => `... on Query { ${s} }`, 'me { id }')} }` }],
      ['depth 16 through __type … ofType', { query: `{ __type(name: "File") { fields { type { ${nest(12, (s) => `ofType { ${s} }`, 'name')} } } } }` }],
      ['introspection cycling fields → type → fields', { query: `{ __schema { types { ${nest(3, (s) => `fields { type { ofType { ofType { ofType { ${s} } } } } }`, 'name')} } } }` }],
      ['20 aliases of me', { query: `{ ${Array.from({ length: 20 }, (_, i) => `m${i}: me { id }`).join(' ')} }` }],
      ['25 directives', { query: `{ me { id ${'@include(if: true) '.repeat(25)}} }` }],
      ['cost over 5,000: 15 × files(first: 100) with authors', { query: `{ ${Array.from({ length: 15 }, (_, i) => heavy(i)).join(' ')} }` }],
      ['more than 2,000 tokens', { query: `{ me { ${'id '.repeat(2100)}} }` }],
      ['a batch: a JSON array of two operations', [{ query: '{ me { id } }' }, { query: '{ files { totalCount } }' }]],
      ['a query cut off mid-way (syntax error)', { query: '{ me { id ' }],
    ];

    for (const [label, body] of REFUSED) {
      it(`refuses ${label} as a client error (400), and stays up`, async () => {
        const res = await fetch(`${server.url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...server.admin.authHeaders() },
          body: JSON.stringify(body),
        });
        const answer = (await res.json()) as any;
        assert.equal(answer.data ?? null, null, 'nothing was executed');
        assert.ok(['GRAPHQL_VALIDATION_FAILED', 'GRAPHQL_PARSE_FAILED', 'BAD_REQUEST'].includes(answer.errors?.[0]?.extensions?.code), JSON.stringify(answer));
        assert.equal(res.status, 400, `HTTP status for a malformed request: ${JSON.stringify(answer.errors[0])}`);
        await healthy(server.url);
        assert.ok((await server.admin.data(`{ me { id } }`)).me.id);
      });
    }

    it('accepts ordinary queries at the limits: 15 aliases, the whole files → edges → node → author depth', async () => {
      const aliases = await server.admin.data(`{ ${Array.from({ length: 15 }, (_, i) => `m${i}: me { id }`).join(' ')} }`);
      assert.equal(Object.keys(aliases).length, 15);
      const { files } = await server.admin.data(`{ files(first: 5) { edges { node { id author { id username } } } pageInfo { hasNextPage } } }`);
      assert.ok(files.edges.length > 0);
    });
  });

  describe('hostile strings are plain data', () => {
    // prettier-ignore
    const HOSTILE: [string, string][] = [
      ['SQL tautology',              `' OR 1=1 --`],
      ['SQL statement break-out',    `'; DROP TABLE files; --`],
      ['double-quote break-out',     `"; DROP TABLE files; --`],
      ['LIKE wildcard %',            '%'],
      ['LIKE wildcard _',            '_'],
      ['backslash',                  '\\'],
      ['escaped wildcard',           '\\%'],
      ['positional parameter',       '$1'],
      ['dollar quoting',             '$$; DROP TABLE users; $$'],
      ['braces',                     '{}'],
      ['a GraphQL selection',        '{ me { id } }'],
      ['a GraphQL break-out',        '") { id } } mutation { deleteFile(id: "x") } #'],
      ['comment markers',            '*/ -- /*'],
      ['NUL',                        'a\u0000b'],
    ];
    /** Where API.md lets a string be refused at all: control characters. Everything else is data. */
    const mayRefuse = (value: string) => /[\u0000-\u001f]/.test(value);
    let names: string[] = [];
    let target: { id: string };
    let filesBefore: number;
    /** Names of the files the hostile-name test adds. */
    const created: string[] = [];

    before(async () => {
      for (const name of ['100%_sure.txt', `o'brien "quoted".txt`, '$1 {} money.txt']) await alice.uploadFile(randomFile(10), name);
      target = await alice.uploadFile(randomFile(10), 'hostile-target.txt');
      const { files } = await server.admin.data(`{ files(first: 100) { totalCount edges { node { name } } } }`);
      assert.ok(files.totalCount <= 100);
      names = files.edges.map((e: any) => e.node.name);
      filesBefore = files.totalCount;
    });

    const expectedMatches = (search: string) => names.filter((n) => n.toLowerCase().includes(search.toLowerCase())).length;

    it('files(search:) as a variable: a literal substring match (wildcards match only themselves)', async () => {
      await forEach(HOSTILE, async (_label, value) => {
        const result = await alice.request(`query($s: String) { files(search: $s, first: 100) { totalCount } }`, { s: value });
        if (mayRefuse(value) && outcome(result) === 'BAD_USER_INPUT') return;
        assert.equal(outcome(result), 'OK', JSON.stringify(result.errors));
        assert.equal(result.data.files.totalCount, expectedMatches(value));
      });
      assert.equal(expectedMatches('%'), 1, 'the test data has one name with %');
    });

    it('files(search:) as a string literal in the query text: the same answer', async () => {
      await forEach(HOSTILE, async (_label, value) => {
        const result = await alice.request(`{ files(search: ${JSON.stringify(value)}, first: 100) { totalCount } }`);
        if (mayRefuse(value) && outcome(result) === 'BAD_USER_INPUT') return;
        assert.equal(outcome(result), 'OK', JSON.stringify(result.errors));
        assert.equal(result.data.files.totalCount, expectedMatches(value));
      });
    });

    it('updateFile(description:) stores and returns the string verbatim', async () => {
      await forEach(HOSTILE, async (_label, value) => {
        const before = (await alice.data(`query($id: ID!) { file(id: $id) { description } }`, { id: target.id })).file.description;
        const result = await alice.request(`mutation($id: ID!, $d: String!) { updateFile(id: $id, description: $d) { description } }`, { id: target.id, d: value });
        const stored = (await alice.data(`query($id: ID!) { file(id: $id) { description } }`, { id: target.id })).file.description;
        if (mayRefuse(value) && outcome(result) === 'BAD_USER_INPUT') {
          assert.equal(stored, before, 'a refused description changes nothing');
          return;
        }
        assert.equal(outcome(result), 'OK', JSON.stringify(result.errors));
        assert.equal(result.data.updateFile.description, value);
        assert.equal(stored, value);
      });
    });

    it('startUpload: the filename is cleaned per API.md, the description kept verbatim', async () => {
      await forEach(HOSTILE, async (_label, value) => {
        const named = await alice.startUpload({ filename: value, totalSize: 1 });
        const expected = cleanedName(value);
        if (expected === undefined) assert.equal(outcome(named), 'BAD_USER_INPUT');
        else {
          assert.equal(outcome(named), 'OK', JSON.stringify(named.errors));
          assert.equal(named.data.startUpload.filename, expected);
        }
        const described = await alice.startUpload({ filename: 'hostile.txt', totalSize: 1, description: value });
        if (mayRefuse(value) && outcome(described) === 'BAD_USER_INPUT') return;
        assert.equal(outcome(described), 'OK', JSON.stringify(described.errors));
        assert.equal(described.data.startUpload.description, value);
        assert.equal((await alice.getUpload(described.data.startUpload.id)).description, value);
      });
    });

    it("login(username:) with the admin's password: never a match, never another error", async () => {
      const usernames: [string, string][] = [
        ...HOSTILE,
        ['% instead of the name', '%'],
        ['_ wildcards', '_____'],
        ['_ for one letter', '_dmin'],
        ['prefix and %', 'adm%'],
        ['quote and comment', `${ADMIN.username}' --`],
        ['tautology after the name', `${ADMIN.username}' OR '1'='1`],
      ];
      await forEach(usernames, async (_label, value) => {
        const result = await server.client.request(LOGIN, { u: value, p: ADMIN.password });
        const code = outcome(result);
        if (mayRefuse(value) && code === 'BAD_USER_INPUT') return;
        assert.equal(code, 'UNAUTHENTICATED', JSON.stringify(result.errors ?? result.data));
      });
    });

    it('createUser(username:) creates exactly that name or answers BAD_USER_INPUT', async () => {
      await forEach(HOSTILE, async (_label, value) => {
        const result = await server.admin.request(`mutation($u: String!) { createUser(username: $u, password: "password-123456") { username } }`, { u: value });
        if (outcome(result) === 'BAD_USER_INPUT') return;
        assert.equal(outcome(result), 'OK', JSON.stringify(result.errors));
        assert.equal(result.data.createUser.username, value);
      });
    });

    it('as ids, cursors and dates: NOT_FOUND, null or BAD_USER_INPUT, nothing else', async () => {
      await forEach(HOSTILE, async (_label, value) => {
        const file = await alice.request(`query($id: ID!) { file(id: $id) { id } }`, { id: value });
        assert.equal(outcome(file), 'OK', JSON.stringify(file.errors));
        assert.equal(file.data.file, null);
        assert.equal(outcome(await alice.request(`query($id: ID!) { upload(id: $id) { id } }`, { id: value })), 'NOT_FOUND');
        assert.equal(outcome(await alice.request(`mutation($id: ID!) { deleteFile(id: $id) }`, { id: value })), 'NOT_FOUND');
        assert.equal(outcome(await alice.request(`mutation($id: ID!) { abortUpload(uploadId: $id) { id } }`, { id: value })), 'NOT_FOUND');
        assert.equal(outcome(await alice.request(`query($a: String) { files(after: $a) { totalCount } }`, { a: value })), 'BAD_USER_INPUT');
        assert.equal(outcome(await alice.request(`query($d: DateTime) { files(uploadedBefore: $d) { totalCount } }`, { d: value })), 'BAD_USER_INPUT');
        const download = await alice.download(`/files/${encodeURIComponent(value)}/content`);
        assert.equal(download.status, 404);
      });
    });

    it('completes uploads named with them: the File keeps the cleaned name, the download header carries it intact', async () => {
      const seen = new Set<string>();
      const distinct = HOSTILE.filter(([, value]) => {
        const name = cleanedName(value);
        if (name === undefined || seen.has(name.toLowerCase())) return false;
        seen.add(name.toLowerCase());
        return true;
      });
      await forEach(distinct, async (_label, value) => {
        const file = await alice.uploadFile(randomFile(5), value);
        created.push(file.name);
        assert.equal(file.name, cleanedName(value));
        assert.equal((await alice.data(`query($id: ID!) { file(id: $id) { name } }`, { id: file.id })).file.name, file.name);
        const download = await alice.download(`/files/${file.id}/content`);
        assert.equal(download.status, 200);
        const encoded = /filename\*=UTF-8''([^;\s]+)/.exec(download.headers.get('content-disposition') ?? '')?.[1];
        assert.equal(decodeURIComponent(encoded ?? ''), file.name, `Content-Disposition: ${download.headers.get('content-disposition')}`);
      });
    });

    it('afterwards the tables are intact: the same files, the admin still there', async () => {
      const { files } = await server.admin.data(`{ files(first: 100) { totalCount edges { node { name } } } }`);
      assert.equal(files.totalCount, filesBefore + created.length);
      assert.deepEqual(files.edges.map((e: any) => e.node.name).filter((n: string) => !created.includes(n)), names);
      assert.equal(await count(`select count(*) as n from users where username = ?`, [ADMIN.username]), 1);
      assert.equal((await server.admin.data(`{ me { username } }`)).me.username, ADMIN.username);
      await healthy(server.url);
    });
  });
});
