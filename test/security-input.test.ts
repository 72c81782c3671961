import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertEach, expectHealthy, outcome } from './helpers/assert';
import { LOGIN, randomFile, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { ADMIN, startServer, type TestServer } from './helpers/server';
import { uploadFile } from './helpers/upload';

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
});
