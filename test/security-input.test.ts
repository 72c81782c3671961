import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { assertCleanError, assertEach, expectCode, expectHealthy, outcome } from './helpers/assert';
import { CREATE_USER, LOGIN, randomFile, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { encodeMultipart } from './helpers/multipart';
import { ADMIN, startServer, type TestServer } from './helpers/server';
import { signedToken } from './helpers/tokens';
import { uploadFile } from './helpers/upload';
import type { SqlEntityManager } from '@mikro-orm/postgresql';
import jwt from 'jsonwebtoken';
import { File } from '../src/entities';
import { nameContains } from '../src/services/file.service';

// Hostile input (issue 4, "Bad input"), over real HTTP: query limits, and injection strings in
// every field a client fills in. Error codes per operation live in the errors-*.test.ts files.

/**
 * Hostile strings, with what the server does with each, worked out from
 * src/services/validation.ts and checked against the running server:
 * `matches`: how many of the fixture's file names files(search:) finds (a literal,
 * case-insensitive substring), or the code it answers; `filename`: the name startUpload stores
 * (path components and control characters go), null where it answers BAD_USER_INPUT;
 * `text`: whether a description takes it verbatim (NUL cannot be stored: BAD_USER_INPUT);
 * `username`: whether createUser takes it (letters, digits and . _ @ - only).
 */
interface Hostile {
  label: string;
  value: string;
  matches: number | 'BAD_USER_INPUT';
  filename: string | null;
  text: 'OK' | 'BAD_USER_INPUT';
  username: 'OK' | 'BAD_USER_INPUT';
}

// prettier-ignore
const HOSTILE: Hostile[] = [
  { label: 'SQL tautology',           value: `' OR 1=1 --`,                matches: 0, filename: `' OR 1=1 --`,                text: 'OK', username: 'BAD_USER_INPUT' },
  { label: 'SQL statement break-out', value: `'; DROP TABLE files; --`,    matches: 0, filename: `'; DROP TABLE files; --`,    text: 'OK', username: 'BAD_USER_INPUT' },
  { label: 'double-quote break-out',  value: `"; DROP TABLE files; --`,    matches: 0, filename: `"; DROP TABLE files; --`,    text: 'OK', username: 'BAD_USER_INPUT' },
  { label: 'LIKE wildcard %',         value: '%',                          matches: 1, filename: '%',                          text: 'OK', username: 'BAD_USER_INPUT' },
  { label: 'LIKE wildcard _',         value: '_',                          matches: 1, filename: '_',                          text: 'OK', username: 'OK' },
  { label: 'backslash',               value: '\\',                         matches: 0, filename: null,                         text: 'OK', username: 'BAD_USER_INPUT' },
  { label: 'escaped wildcard',        value: '\\%',                        matches: 0, filename: '%',                          text: 'OK', username: 'BAD_USER_INPUT' },
  { label: 'positional parameter',    value: '$1',                         matches: 1, filename: '$1',                         text: 'OK', username: 'BAD_USER_INPUT' },
  { label: 'dollar quoting',          value: '$$; DROP TABLE users; $$',   matches: 0, filename: '$$; DROP TABLE users; $$',   text: 'OK', username: 'BAD_USER_INPUT' },
  { label: 'braces',                  value: '{}',                         matches: 1, filename: '{}',                         text: 'OK', username: 'BAD_USER_INPUT' },
  { label: 'a GraphQL selection',     value: '{ me { id } }',              matches: 0, filename: '{ me { id } }',              text: 'OK', username: 'BAD_USER_INPUT' },
  { label: 'a GraphQL break-out',     value: '") { id } } mutation { deleteFile(id: "x") } #', matches: 0,
    filename: '") { id } } mutation { deleteFile(id: "x") } #', text: 'OK', username: 'BAD_USER_INPUT' },
  { label: 'comment markers',         value: '*/ -- /*',                   matches: 0, filename: '*',                          text: 'OK', username: 'BAD_USER_INPUT' },
  { label: 'NUL',                     value: 'a\u0000b',                   matches: 'BAD_USER_INPUT', filename: 'ab',          text: 'BAD_USER_INPUT', username: 'BAD_USER_INPUT' },
];
const rows = HOSTILE.map((h) => [h.label, h] as [string, Hostile]);

/** The library's files; every test that adds one deletes it again. */
const FIXTURE = ['100%_sure.txt', `o'brien "quoted".txt`, '$1 {} money.txt', 'hostile-target.txt'];

describe(`security: hostile input (${databaseKind})`, () => {
  let server: TestServer;
  let alice: GraphQLClient;
  /** Shared: its name is read-only; the description test writes only its description. */
  let target: { id: string };

  before(async () => {
    server = await startServer();
    alice = await server.admin.newUser();
    const files = [];
    for (const name of FIXTURE) files.push(await uploadFile(alice, randomFile(10), name));
    target = files[FIXTURE.indexOf('hostile-target.txt')];
  });
  after(() => server?.close());

  /** Every file name in the library, newest first. */
  const fileNames = async (): Promise<string[]> => {
    const { files } = await server.admin.data(`{ files(first: 100) { totalCount edges { node { name } } } }`);
    assert.ok(files.totalCount <= 100);
    return files.edges.map((e: any) => e.node.name);
  };

  describe('query limits', () => {
    const nest = (levels: number, wrap: (inner: string) => string, inner: string) => {
      let selection = inner;
      for (let i = 0; i < levels; i++) selection = wrap(selection);
      return selection;
    };
    const heavy = (i: number) => `a${i}: files(first: 100) { edges { node { id name size md5 author { id username isAdmin createdAt } } } }`;
    // [what, the request body, the code, the meaningful part of the message]
    const REFUSED: [string, unknown, string, RegExp][] = [
      ['depth 14 through nested inline fragments', { query: `{ ${nest(12, (s) => `... on Query { ${s} }`, 'me { id }')} }` },
        'GRAPHQL_VALIDATION_FAILED', /Query depth limit of 10 exceeded, found 14\./],
      ['depth 16 through __type … ofType', { query: `{ __type(name: "File") { fields { type { ${nest(12, (s) => `ofType { ${s} }`, 'name')} } } } }` },
        'GRAPHQL_VALIDATION_FAILED', /Query depth limit of 10 exceeded, found 16\./],
      ['introspection cycling fields → type → fields', { query: `{ __schema { types { ${nest(3, (s) => `fields { type { ofType { ofType { ofType { ${s} } } } } }`, 'name')} } } }` },
        'GRAPHQL_VALIDATION_FAILED', /^Maximum introspection depth exceeded$/],
      ['20 aliases of me', { query: `{ ${Array.from({ length: 20 }, (_, i) => `m${i}: me { id }`).join(' ')} }` },
        'GRAPHQL_VALIDATION_FAILED', /Aliases limit of 15 exceeded, found 20\./],
      ['25 directives', { query: `{ me { id ${'@include(if: true) '.repeat(25)}} }` }, 'GRAPHQL_VALIDATION_FAILED', /Directives limit of 20 exceeded, found 25\./],
      ['cost over 5,000: 15 × files(first: 100) with authors', { query: `{ ${Array.from({ length: 15 }, (_, i) => heavy(i)).join(' ')} }` },
        'GRAPHQL_VALIDATION_FAILED', /Query Cost limit of 5000 exceeded/],
      ['more than 2,000 tokens', { query: `{ me { ${'id '.repeat(2100)}} }` }, 'GRAPHQL_PARSE_FAILED', /more that 2000 tokens/],
      ['a batch: a JSON array of two operations', [{ query: '{ me { id } }' }, { query: '{ files { totalCount } }' }], 'BAD_REQUEST', /^Operation batching disabled\.$/],
      ['a query cut off mid-way (syntax error)', { query: '{ me { id ' }, 'GRAPHQL_PARSE_FAILED', /Expected Name, found <EOF>/],
    ];

    for (const [label, body, code, message] of REFUSED) {
      it(`refuses ${label} as a client error (400, ${code}), and stays up`, async () => {
        const res = await fetch(`${server.url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...server.admin.authHeaders() },
          body: JSON.stringify(body),
        });
        const answer = (await res.json()) as any;
        assert.equal(answer.data ?? null, null, 'nothing was executed');
        assert.equal(answer.errors?.[0]?.extensions?.code, code, JSON.stringify(answer));
        assert.match(answer.errors[0].message, message);
        assert.equal(res.status, 400, `HTTP status for a malformed request: ${JSON.stringify(answer.errors[0])}`);
        await expectHealthy(server.url);
        assert.equal((await server.admin.data(`{ me { username } }`)).me.username, ADMIN.username);
      });
    }

    it('accepts ordinary queries at the limits: 15 aliases, the whole files → edges → node → author depth', async () => {
      const aliases = await server.admin.data(`{ ${Array.from({ length: 15 }, (_, i) => `m${i}: me { id }`).join(' ')} }`);
      assert.equal(Object.keys(aliases).length, 15);
      const { files } = await server.admin.data(`{ files(first: 5) { edges { node { name author { username } } } pageInfo { hasNextPage } } }`);
      assert.deepEqual(
        files.edges.map((e: any) => e.node.name).sort(),
        [...FIXTURE].sort(),
      );
      assert.equal(files.pageInfo.hasNextPage, false);
    });
  });

  describe('hostile strings are plain data', () => {
    it('files(search:) as a variable: a literal substring match (wildcards match only themselves)', async () => {
      await assertEach(rows, async (_label, { value, matches }) => {
        const result = await alice.request(`query($s: String) { files(search: $s, first: 100) { totalCount } }`, { s: value });
        if (matches === 'BAD_USER_INPUT') assert.equal(outcome(result), matches);
        else assert.deepEqual({ outcome: outcome(result), totalCount: result.data?.files.totalCount }, { outcome: 'OK', totalCount: matches });
      });
    });

    it('files(search:) as a string literal in the query text: the same answer', async () => {
      await assertEach(rows, async (_label, { value, matches }) => {
        const result = await alice.request(`{ files(search: ${JSON.stringify(value)}, first: 100) { totalCount } }`);
        if (matches === 'BAD_USER_INPUT') assert.equal(outcome(result), matches);
        else assert.deepEqual({ outcome: outcome(result), totalCount: result.data?.files.totalCount }, { outcome: 'OK', totalCount: matches });
      });
    });

    it('updateFile(description:) stores and returns the string verbatim', async () => {
      const stored = async () => (await alice.data(`query($id: ID!) { file(id: $id) { description } }`, { id: target.id })).file.description;
      await assertEach(rows, async (_label, { value, text }) => {
        const before = await stored();
        const result = await alice.request(`mutation($id: ID!, $d: String!) { updateFile(id: $id, description: $d) { description } }`, { id: target.id, d: value });
        assert.equal(outcome(result), text, JSON.stringify(result.errors));
        if (text === 'OK') assert.equal(result.data.updateFile.description, value);
        assert.equal(await stored(), text === 'OK' ? value : before, 'stored verbatim, or unchanged when refused');
      });
    });

    it('startUpload: the filename is cleaned per API.md, the description kept verbatim', async () => {
      await assertEach(rows, async (_label, { value, filename, text }) => {
        const named = await alice.startUpload({ filename: value, totalSize: 1 });
        if (filename === null) assert.equal(outcome(named), 'BAD_USER_INPUT');
        else assert.deepEqual({ outcome: outcome(named), filename: named.data?.startUpload.filename }, { outcome: 'OK', filename });
        const described = await alice.startUpload({ filename: 'hostile.txt', totalSize: 1, description: value });
        assert.equal(outcome(described), text, JSON.stringify(described.errors));
        if (text === 'BAD_USER_INPUT') return;
        assert.equal(described.data.startUpload.description, value);
        assert.equal((await alice.getUpload(described.data.startUpload.id)).description, value);
      });
    });

    it("login(username:) with the admin's password: never a match, never another error", async () => {
      const usernames: [string, string][] = [
        ...HOSTILE.map((h): [string, string] => [h.label, h.value]),
        ['% instead of the name', '%'],
        ['_ wildcards', '_____'],
        ['_ for one letter', '_dmin'],
        ['prefix and %', 'adm%'],
        ['quote and comment', `${ADMIN.username}' --`],
        ['tautology after the name', `${ADMIN.username}' OR '1'='1`],
      ];
      await assertEach(usernames, async (_label, value) => {
        const result = await server.client.request(LOGIN, { u: value, p: ADMIN.password });
        assert.equal(outcome(result), 'UNAUTHENTICATED', JSON.stringify(result.errors ?? result.data));
      });
    });

    it('createUser(username:) creates exactly that name or answers BAD_USER_INPUT', async () => {
      await assertEach(rows, async (_label, { value, username }) => {
        const result = await server.admin.request(`mutation($u: String!) { createUser(username: $u, password: "password-123456") { username } }`, { u: value });
        assert.equal(outcome(result), username, JSON.stringify(result.errors));
        if (username === 'OK') assert.equal(result.data.createUser.username, value);
      });
    });

    it('as ids, cursors and dates: NOT_FOUND, null or BAD_USER_INPUT, nothing else', async () => {
      await assertEach(rows, async (_label, { value }) => {
        const file = await alice.request(`query($id: ID!) { file(id: $id) { id } }`, { id: value });
        assert.equal(outcome(file), 'OK', JSON.stringify(file.errors));
        assert.equal(file.data.file, null);
        assert.equal(outcome(await alice.request(`query($id: ID!) { upload(id: $id) { id } }`, { id: value })), 'NOT_FOUND');
        assert.equal(outcome(await alice.request(`mutation($id: ID!) { deleteFile(id: $id) }`, { id: value })), 'NOT_FOUND');
        assert.equal(outcome(await alice.request(`mutation($id: ID!) { abortUpload(uploadId: $id) { id } }`, { id: value })), 'NOT_FOUND');
        assert.equal(outcome(await alice.request(`query($a: String) { files(after: $a) { totalCount } }`, { a: value })), 'BAD_USER_INPUT');
        assert.equal(outcome(await alice.request(`query($d: DateTime) { files(uploadedBefore: $d) { totalCount } }`, { d: value })), 'BAD_USER_INPUT');
        assert.equal((await alice.download(`/files/${encodeURIComponent(value)}/content`)).status, 404);
      });
    });

    it('completes uploads named with them: the File keeps the cleaned name, the download header carries it intact', async () => {
      // One upload per distinct stored name ('\\%' is stored as '%', like '%').
      const distinct = rows.filter(([, h], i) => h.filename !== null && rows.findIndex(([, o]) => o.filename === h.filename) === i);
      const created: string[] = [];
      try {
        await assertEach(distinct, async (_label, { value, filename }) => {
          const file = await uploadFile(alice, randomFile(5), value);
          created.push(file.id);
          assert.equal(file.name, filename);
          assert.equal((await alice.data(`query($id: ID!) { file(id: $id) { name } }`, { id: file.id })).file.name, filename);
          const download = await alice.download(`/files/${file.id}/content`);
          assert.equal(download.status, 200);
          const encoded = /filename\*=UTF-8''([^;\s]+)/.exec(download.headers.get('content-disposition') ?? '')?.[1];
          assert.equal(decodeURIComponent(encoded ?? ''), filename, `Content-Disposition: ${download.headers.get('content-disposition')}`);
        });
        assert.equal(created.length, 12);
      } finally {
        // The other tests count on the fixture library alone.
        for (const id of created) await alice.data(`mutation($id: ID!) { deleteFile(id: $id) }`, { id });
      }
    });

    it('hostile strings in search, descriptions, names and logins leave the tables intact: the same files, the admin still there', async () => {
      const filesBefore = await fileNames();
      const users = async () => Number((await server.sql(`select count(*) as n from users`))[0].n);
      const usersBefore = await users();
      for (const { value } of HOSTILE) {
        await alice.request(`query($s: String) { files(search: $s) { totalCount } }`, { s: value });
        await alice.request(`mutation($id: ID!, $d: String!) { updateFile(id: $id, description: $d) { id } }`, { id: target.id, d: value });
        await alice.startUpload({ filename: value, totalSize: 1, description: value });
        await server.client.request(LOGIN, { u: value, p: ADMIN.password });
      }
      assert.deepEqual(await fileNames(), filesBefore);
      assert.equal(await users(), usersBefore);
      assert.equal(Number((await server.sql(`select count(*) as n from users where username = ?`, [ADMIN.username]))[0].n), 1);
      assert.equal((await server.admin.data(`{ me { username } }`)).me.username, ADMIN.username);
      await expectHealthy(server.url);
    });
  });
  // Issue 13, "hostile clients": input that used to reach a 500 gets a code from docs/API.md.
  describe('hostile clients: bad input gets a code, never a 500', () => {
    it('startUpload refuses a mimeType that is not a media type (CR/LF, no subtype) or longer than 255 characters', async () => {
      const refused: [string, string][] = [
        ['CR LF and a header', 'text/plain\r\nX-Injected: yes'],
        ['an LF before a parameter', 'text/plain;\ncharset=utf-8'],
        ['a bare CR', 'text/html\rx'],
        ['words', 'not a type'],
        ['no subtype', 'text/'],
        ['no type', '/plain'],
        ['a parameter without a value', 'text/plain; charset'],
        ['a letter outside ASCII', 'tëxt/plain'],
        ['256 characters', `text/plain; a=${'x'.repeat(242)}`],
      ];
      assert.equal(refused.at(-1)![1].length, 256);
      await assertEach(refused, async (_label, mimeType) => {
        const result = await alice.startUpload({ filename: 'typed.bin', totalSize: 1, mimeType });
        const error = expectCode(result, 'BAD_USER_INPUT');
        assert.match(error.message, /mimeType/);
      });
      const accepted: [string, string, string][] = [
        ['plain', 'text/plain', 'text/plain'],
        ['with a parameter', 'text/plain; charset=utf-8', 'text/plain; charset=utf-8'],
        ['a structured suffix', 'application/vnd.api+json', 'application/vnd.api+json'],
        ['a quoted parameter', 'multipart/form-data; boundary="a b"', 'multipart/form-data; boundary="a b"'],
        ['spaces and line breaks around (trimmed)', '  image/png\r\n', 'image/png'],
        ['255 characters', `text/plain; a=${'x'.repeat(241)}`, `text/plain; a=${'x'.repeat(241)}`],
      ];
      await assertEach(accepted, async (_label, mimeType, stored) => {
        const result = await alice.startUpload({ filename: 'typed.bin', totalSize: 1, mimeType });
        assert.equal(outcome(result), 'OK', JSON.stringify(result.errors));
        assert.equal(result.data.startUpload.mimeType, stored);
      });
    });

    it('a file stored before these checks (a mime type with a line break, a name with a bidi override) downloads as application/octet-stream, under its name without the override', async () => {
      const bytes = randomFile(20);
      const file = await uploadFile(alice, bytes, 'legacy-type.txt');
      try {
        await server.sql(`update files set mime_type = ?, name = ? where id = ?`, ['text/plain\r\nX-Injected: yes', 'legacy\u202efdp.exe', file.id]);
        for (const method of ['GET', 'HEAD']) {
          const res = await fetch(`${server.url}/files/${file.id}/content`, { method, headers: alice.authHeaders() });
          assert.equal(res.status, 200, method);
          assert.equal(res.headers.get('content-type'), 'application/octet-stream', method);
          assert.equal(res.headers.get('x-injected'), null, method);
          const disposition = res.headers.get('content-disposition') ?? '';
          assert.equal(decodeURIComponent(/filename\*=UTF-8''([^;\s]+)/.exec(disposition)?.[1] ?? ''), 'legacyfdp.exe', disposition);
          if (method === 'GET') assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes);
        }
      } finally {
        await alice.data(`mutation($id: ID!) { deleteFile(id: $id) }`, { id: file.id });
      }
    });

    it('a forged cursor dated year -271821, 0000 or +275760 is BAD_USER_INPUT; so is such a date in uploadedBefore', async () => {
      const cursor = (iso: string) => Buffer.from(`${iso}|${randomUUID()}`).toString('base64url');
      const forged: [string, string][] = [
        ['year -271821 (the earliest JavaScript date)', '-271821-04-20T00:00:00.000Z'],
        ['year 0000', '0000-01-01T00:00:00.000Z'],
        ['year +275760 (the latest JavaScript date)', '+275760-09-13T00:00:00.000Z'],
        ['a date without milliseconds', '2026-01-01T00:00:00Z'],
      ];
      await assertEach(forged, async (_label, iso) => {
        const result = await alice.request(`query($a: String) { files(after: $a) { totalCount } }`, { a: cursor(iso) });
        expectCode(result, 'BAD_USER_INPUT');
      });
      const fine = await alice.request(`query($a: String) { files(after: $a) { totalCount } }`, { a: cursor('0001-01-01T00:00:00.000Z') });
      assert.equal(outcome(fine), 'OK', JSON.stringify(fine.errors));
      for (const date of ['0000-01-01T00:00:00Z', '-271821-04-20T00:00:00Z', '+275760-09-13T00:00:00Z']) {
        for (const query of [`query($d: DateTime) { files(uploadedBefore: $d) { totalCount } }`, `query($d: DateTime) { newestFile(uploadedBefore: $d) { id } }`]) {
          const result = await alice.request(query, { d: date });
          assert.equal(outcome(result), 'BAD_USER_INPUT', `${date}: ${JSON.stringify(result.errors)}`);
        }
      }
      await expectHealthy(server.url);
    });

    it('a body labelled multipart/form-data that is not multipart: 400 with a code, and the server stays up', async () => {
      const json = JSON.stringify({ query: '{ me { id } }' });
      const bodies: [string, string, string][] = [
        ['JSON under a boundary', 'multipart/form-data; boundary=xyz', json],
        ['JSON without a boundary', 'multipart/form-data', json],
        ['an empty body', 'multipart/form-data; boundary=xyz', ''],
        ['a part that never ends', 'multipart/form-data; boundary=xyz', '--xyz\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{'],
      ];
      await assertEach(bodies, async (_label, contentType, body) => {
        const res = await fetch(`${server.url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': contentType, 'apollo-require-preflight': 'true', ...alice.authHeaders() },
          body,
        });
        const answer = (await res.json()) as any;
        assert.equal(res.status, 400, JSON.stringify(answer));
        assert.equal(answer.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(answer));
        assertCleanError(answer.errors[0], contentType);
      });
      await expectHealthy(server.url);
    });

    it('a file mapped into a String variable: BAD_USER_INPUT, and the message shows none of the upload\'s insides', async () => {
      const { contentType, body } = encodeMultipart([
        { name: 'operations', value: JSON.stringify({ query: 'query($s: String) { files(search: $s) { totalCount } }', variables: { s: null } }) },
        { name: 'map', value: JSON.stringify({ 0: ['variables.s'] }) },
        { name: '0', value: 'file bytes', filename: 'a.txt' },
      ]);
      const result = await alice.postMultipart({ contentType, body });
      const error = expectCode(result, 'BAD_USER_INPUT');
      assertCleanError(error, 'Upload as String');
      assert.doesNotMatch(error.message, /resolve|reject|promise|createReadStream|\[function|\[Object|\{/i, error.message);
      assert.match(error.message, /\$s/);
      // Without a token, UNAUTHENTICATED still comes first (API.md's order).
      expectCode(await server.client.postMultipart({ contentType, body }), 'UNAUTHENTICATED');
    });

    it('refuses names of only spaces; strips bidi overrides and zero-width characters from filenames, also in Content-Disposition', async () => {
      for (const filename of ['   ', ' \t ', '\u3000', '\u200b', '\u202e \u200d', 'dir/   ']) {
        expectCode(await alice.startUpload({ filename, totalSize: 1 }), 'BAD_USER_INPUT', JSON.stringify(filename));
      }
      for (const username of ['   ', '\u3000', 'ad\u200bmin', 'ad\u202emin', '\u2066admin\u2069']) {
        expectCode(await server.admin.request(CREATE_USER, { u: username, p: 'password-123456' }), 'BAD_USER_INPUT', JSON.stringify(username));
      }
      const disguised: [string, string, string][] = [
        ['right-to-left override', 'invoice\u202efdp.exe', 'invoicefdp.exe'],
        ['every bidi embedding, override and isolate', '\u202aa\u202bb\u202cc\u202dd\u2066e\u2067f\u2068g\u2069.txt', 'abcdefg.txt'],
        ['zero-width space, joiners, word joiner, BOM', 'r\u200be\u200cp\u200do\u2060r\ufefft.pdf', 'report.pdf'],
      ];
      const created: string[] = [];
      try {
        await assertEach(disguised, async (_label, value, cleaned) => {
          const started = await alice.startUpload({ filename: value, totalSize: 1 });
          assert.equal(started.data?.startUpload.filename, cleaned, JSON.stringify(started.errors));
          const file = await uploadFile(alice, randomFile(3), value);
          created.push(file.id);
          assert.equal(file.name, cleaned);
          const download = await alice.download(`/files/${file.id}/content`);
          const disposition = download.headers.get('content-disposition') ?? '';
          const encoded = /filename\*=UTF-8''([^;\s]+)/.exec(disposition)?.[1];
          assert.equal(decodeURIComponent(encoded ?? ''), cleaned, disposition);
        });
      } finally {
        for (const id of created) await alice.data(`mutation($id: ID!) { deleteFile(id: $id) }`, { id });
      }
    });

    it('refuses a correctly signed token without an expiry time (UNAUTHENTICATED), for the API and for download links', async () => {
      const secret = server.app.services.config.jwtSecret;
      const { me } = await alice.data(`{ me { id } }`);
      const ver = Number((await server.sql(`select token_version from users where id = ?`, [me.id]))[0].token_version);
      const forever = jwt.sign({ sub: me.id, ver }, secret, { algorithm: 'HS256' });
      assert.equal((jwt.decode(forever) as { exp?: number }).exp, undefined);
      expectCode(await alice.withToken(forever).request(`{ me { id } }`), 'UNAUTHENTICATED');
      // The same claims with an expiry are accepted: only the missing exp is refused.
      assert.equal((await alice.withToken(signedToken({ sub: me.id, ver }, secret)).data(`{ me { id } }`)).me.id, me.id);

      const file = await uploadFile(alice, randomFile(4), 'link-without-exp.bin');
      try {
        const link = jwt.sign({ fid: file.id, typ: 'download' }, secret, { algorithm: 'HS256' });
        assert.equal((await alice.download(`/files/${file.id}/content?token=${link}`, {}, false)).status, 401);
        const withExp = signedToken({ fid: file.id, typ: 'download' }, secret);
        assert.equal((await alice.download(`/files/${file.id}/content?token=${withExp}`, {}, false)).status, 200);
      } finally {
        await alice.data(`mutation($id: ID!) { deleteFile(id: $id) }`, { id: file.id });
      }
    });
  });
});

// Issue 13, "unbounded search": files(search:) is bounded, literal, and served by a trigram index.
describe(`security: files(search:) on a large library (${databaseKind})`, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.close());

  const count = async (search: string) => server.admin.request(`query($s: String) { files(search: $s, first: 1) { totalCount } }`, { s: search });

  it('refuses a search longer than 200 characters (a 900 KB pattern of % and _ included) as BAD_USER_INPUT', async () => {
    assert.equal(outcome(await count('x'.repeat(200))), 'OK');
    for (const search of ['x'.repeat(201), '%_'.repeat(450_000)]) {
      const error = expectCode(await count(search), 'BAD_USER_INPUT', `${search.length} characters`);
      assert.match(error.message, /200/);
    }
  });

  it('matches %, _ and \\ only literally, on a library of 20,000 files, and the database answers from the trigram index', async () => {
    await server.sql(
      `insert into files (id, name, size, md5, uploaded_at)
       select gen_random_uuid(), 'bulk-' || g || case when g % 1000 = 0 then '-50%_off\\x.bin' else '.bin' end, 1, 'd41d8cd98f00b204e9800998ecf8427e', now() - g * interval '1 second'
         from generate_series(1, 20000) g`,
    );
    await server.sql(`analyze files`);
    const total = async (search: string) => {
      const result = await count(search);
      assert.equal(outcome(result), 'OK', JSON.stringify(result.errors));
      return result.data.files.totalCount as number;
    };
    assert.equal(await total('50%_OFF\\X'), 20, 'case-insensitive, every character literal');
    assert.equal(await total('%'), 20);
    assert.equal(await total('_'), 20);
    assert.equal(await total('\\'), 20);
    assert.equal(await total('bulk-1%'), 0, '% is no wildcard');
    assert.equal(await total('bulk-1_'), 0, '_ is no wildcard');
    assert.equal(await total('bulk-12345.'), 1);

    assert.equal((await server.sql(`select count(*)::int as n from pg_indexes where indexname = 'files_name_trgm'`))[0].n, 1, 'the migration made the index');
    // The very condition the service filters with, planned by the database.
    const em = server.app.database.orm.em.fork() as SqlEntityManager;
    const query = em.createQueryBuilder(File).count().where(nameContains('bulk-12345.') as object).getFormattedQuery();
    // Whether a sequential scan is cheaper depends on the table's size and statistics; with it
    // ruled out, a plan that is still sequential would mean the index cannot serve the query.
    const rows = await em.transactional(async (tx) => {
      await tx.execute('set local enable_seqscan = off');
      return tx.execute(`explain ${query}`);
    });
    const plan = rows.map((row: Record<string, string>) => row['QUERY PLAN']).join('\n');
    assert.match(plan, /Bitmap Index Scan on files_name_trgm/, plan);
  });
});
