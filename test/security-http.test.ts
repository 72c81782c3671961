import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { assertEach, expectCode, expectHealthy, outcome } from './helpers/assert';
import { randomFile, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { encodeMultipart, multipartHeaders } from './helpers/multipart';
import { ADMIN, startServers, type TestServer } from './helpers/server';
import { unsignedToken } from './helpers/tokens';
import { sendChunks, uploadFile } from './helpers/upload';

// Security over HTTP (issue 4, "Security"): CSRF prevention, CORS, security headers and
// production mode (no introspection, no suggestions, errors without internals).

const APP_ORIGIN = 'https://app.example';
const EVIL_ORIGIN = 'https://evil.example';

describe(`security: CSRF, CORS, headers and production mode (${databaseKind})`, () => {
  /** Default configuration: no CORS origins, introspection on (not production). */
  let server: TestServer;
  /** NODE_ENV=production with CORS_ORIGINS=https://app.example. */
  let production: TestServer;
  /** NODE_ENV=production with GRAPHQL_INTROSPECTION=true, behind a TLS proxy on loopback (TRUST_PROXY=loopback). */
  let introspective: TestServer;
  /** Shared and read-only: alice is the author of `aliceFile`. */
  let alice: GraphQLClient;
  let aliceFile: { id: string; md5: string; downloadUrl: string };

  before(async () => {
    [server, production, introspective] = await startServers(
      {},
      { NODE_ENV: 'production', JWT_SECRET: 'p'.repeat(40), CORS_ORIGINS: APP_ORIGIN },
      { NODE_ENV: 'production', JWT_SECRET: 'q'.repeat(40), GRAPHQL_INTROSPECTION: 'true', TRUST_PROXY: 'loopback' },
    );
    alice = await server.admin.newUser();
    aliceFile = await uploadFile(alice, randomFile(1000), 'shared.txt');
  });
  after(() => Promise.all([server?.close(), production?.close(), introspective?.close()]));

  describe('CSRF prevention', () => {
    const description = async () =>
      (await server.admin.data(`query($id: ID!) { file(id: $id) { description } }`, { id: aliceFile.id })).file.description as string;

    it('refuses a multipart request without apollo-require-preflight (400) and stores nothing', async () => {
      const upload = await alice.start('csrf.bin', 4);
      const refused = await alice.uploadChunk(upload.id, 0, Buffer.from('evil'), { preflight: false });
      assert.equal(refused.status, 400);
      assert.equal(refused.data, undefined);
      expectCode(refused, 'BAD_REQUEST');
      assert.equal((await alice.getUpload(upload.id)).offset, 0, 'offset unchanged');
      // The same request with the header goes through: the header is what made the difference.
      await sendChunks(alice, upload.id, Buffer.from('good'), 0, 4, 4);
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
      assert.equal(res.status, 204);
      assert.deepEqual(
        Object.fromEntries([...res.headers].filter(([name]) => name.startsWith('access-control-') || name === 'vary')),
        {
          'access-control-allow-origin': APP_ORIGIN,
          // What uploads and downloads need: the token, JSON, the CSRF-prevention header, ranges, revalidation.
          'access-control-allow-headers': 'authorization,content-type,apollo-require-preflight,range,if-none-match',
          'access-control-allow-methods': 'GET,HEAD,PUT,PATCH,POST,DELETE',
          'access-control-expose-headers': 'content-range,content-length,content-disposition,etag',
          'access-control-max-age': '600',
          vary: 'Origin', // caches keep answers per origin
        },
      );
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
        assert.equal(h.get('x-frame-options'), 'SAMEORIGIN', what);
        assert.equal(h.get('strict-transport-security'), 'max-age=31536000; includeSubDomains', what);
        assert.equal(h.get('referrer-policy'), 'no-referrer', what);
        assert.equal(h.get('cross-origin-opener-policy'), 'same-origin', what);
        assert.equal(h.get('cross-origin-resource-policy'), 'same-site', what);
      }
    });

    it('serves an uploaded HTML page as an attachment, never rendered in the API origin', async () => {
      const file = await uploadFile(alice, Buffer.from('<script>alert(document.domain)</script>'), 'page.html');
      assert.equal(file.name, 'page.html');
      assert.equal(file.mimeType, 'text/html');
      for (const res of [await alice.download(`/files/${file.id}/content`), await server.client.download(file.downloadUrl, {}, false)]) {
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-disposition'), `attachment; filename="page.html"; filename*=UTF-8''page.html`);
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      }
    });

    const PAGE_CSP =
      "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'self';img-src 'self' data:;" +
      "object-src 'none';script-src 'self' 'wasm-unsafe-eval';script-src-attr 'none';style-src 'self' https: 'unsafe-inline'";

    it('the browser page and the explorer are served with a Content-Security-Policy, without upgrade-insecure-requests over plain HTTP', async () => {
      // Over plain HTTP, upgrade-insecure-requests made a browser that opened the page by
      // hostname fetch its CSS and JS over https: the page never loaded (e2e-browser opens it so).
      const pages: [string, Response][] = [
        ['/', await fetch(`${server.url}/`)],
        ['/ with a forged X-Forwarded-Proto (no TRUST_PROXY)', await fetch(`${server.url}/`, { headers: { 'x-forwarded-proto': 'https' } })],
        ['/ from a trusted proxy, over plain HTTP', await fetch(`${introspective.url}/`, { headers: { 'x-forwarded-proto': 'http' } })],
        ['the explorer', await fetch(`${server.url}/graphql`, { headers: { accept: 'text/html' } })],
      ];
      for (const [what, res] of pages) {
        assert.equal(res.status, 200, what);
        assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8', what);
        await res.arrayBuffer();
        // The page holds the bearer token: scripts only from its own origin (and WebAssembly for the md5).
        assert.equal(res.headers.get('content-security-policy'), PAGE_CSP, what);
      }
    });

    it('behind a trusted TLS proxy (X-Forwarded-Proto: https, TRUST_PROXY) the page gets upgrade-insecure-requests', async () => {
      const res = await fetch(`${introspective.url}/`, { headers: { 'x-forwarded-proto': 'https' } });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      assert.equal(res.headers.get('content-security-policy'), `${PAGE_CSP};upgrade-insecure-requests`);
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
      const { __schema } = await introspective.admin.data(`{ __schema { types { name } } }`);
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
      const badOperations = encodeMultipart([
        { name: 'operations', value: '{ not json' },
        { name: 'map', value: '{}' },
      ]);
      // [what, path, request, the error code]
      const cases: [string, string, RequestInit, string][] = [
        ['a validation error', '/graphql', json({ query: '{ me { id nope } }' }), 'GRAPHQL_VALIDATION_FAILED'],
        ['a syntax error', '/graphql', json({ query: '{ me { id ' }), 'GRAPHQL_PARSE_FAILED'],
        ['a variable of the wrong type', '/graphql', json({ query: 'query($n: Int) { files(first: $n) { totalCount } }', variables: { n: 'many' } }), 'BAD_USER_INPUT'],
        ['no token', '/graphql', json({ query: '{ me { id } }' }, { authorization: '' }), 'UNAUTHENTICATED'],
        ['a forged token', '/graphql', json({ query: '{ me { id } }' }, { authorization: `Bearer ${unsignedToken({ sub: randomUUID(), ver: 0 })}` }), 'UNAUTHENTICATED'],
        ['an unknown upload', '/graphql', json({ query: `{ upload(id: "${randomUUID()}") { id } }` }), 'NOT_FOUND'],
        ['a string PostgreSQL cannot store (NUL)', '/graphql', json({ query: 'query($s: String) { files(search: $s) { totalCount } }', variables: { s: 'a\u0000b' } }), 'BAD_USER_INPUT'],
        ['a malformed JSON body', '/graphql', json('{"query": '), 'BAD_USER_INPUT'],
        ['malformed multipart', '/graphql', { method: 'POST', headers: { ...multipartHeaders(badOperations.contentType), ...production.admin.authHeaders() }, body: badOperations.body }, 'BAD_USER_INPUT'],
        ['a download of an unknown file', `/files/${randomUUID()}/content`, { headers: production.admin.authHeaders() }, 'NOT_FOUND'],
      ];
      await assertEach(cases, async (_label, path, init, code) => {
        const res = await fetch(`${production.url}${path}`, init);
        const text = await res.text();
        assert.doesNotMatch(text, /\n\s+at |node_modules|\/src\/|\.[jt]s:\d+/, 'no stack trace');
        assert.doesNotMatch(text, /\b(select|insert into|update "?\w+"? set|delete from)\b|relation "|syntax error at or near|invalid byte sequence|\bpg_/i, 'no SQL');
        const body = JSON.parse(text);
        assert.equal(outcome({ status: res.status, ...body }), code);
        for (const error of body.errors) {
          assert.deepEqual(Object.keys(error).filter((k) => !['message', 'locations', 'path', 'extensions'].includes(k)), []);
          assert.equal(typeof error.message, 'string');
          assert.deepEqual(Object.keys(error.extensions), ['code'], `extensions: ${JSON.stringify(error.extensions)}`);
        }
      });
      await expectHealthy(production.url);
    });
  });
});
