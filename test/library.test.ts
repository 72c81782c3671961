import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectCode } from './helpers/assert';
import { FILE_FIELDS, md5, randomFile, tag, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { ADMIN, startServers, type TestServer } from './helpers/server';
import { uploadFile, verifyDownload } from './helpers/upload';

const LIST = `query($first: Int, $after: String, $before: DateTime, $search: String) {
  files(first: $first, after: $after, uploadedBefore: $before, search: $search) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id name uploadedAt } }
  }
}`;

interface Page {
  totalCount: number;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  edges: { cursor: string; node: { id: string; name: string; uploadedAt: string } }[];
}

const DAY_MS = 86400_000;

describe(`file library and users (${databaseKind})`, () => {
  let server: TestServer;
  /** Holds only the files of the search fixture below, so every search has a known answer. */
  let searchServer: TestServer;
  let alice: GraphQLClient;
  let bob: GraphQLClient;

  /** Test setup only: moves a file's upload time, with millisecond precision like the server's own. */
  const setUploadedAt = (id: string, when: Date) => server.sql(`update files set uploaded_at = ?::timestamptz where id = ?`, [when.toISOString(), id]);

  const list = async (client: GraphQLClient, vars: { first?: number; after?: string | null; before?: string; search?: string }): Promise<Page> =>
    (await client.data(LIST, vars)).files;

  /** Every file matching `vars`, walking the pages. */
  const listAll = async (client: GraphQLClient, vars: { before?: string; search?: string } = {}) => {
    const nodes: Page['edges'][number]['node'][] = [];
    let cursor: string | null = null;
    for (;;) {
      const page: Page = await list(client, { ...vars, first: 100, after: cursor });
      nodes.push(...page.edges.map((e) => e.node));
      if (!page.pageInfo.hasNextPage) return nodes;
      cursor = page.pageInfo.endCursor;
    }
  };

  const fileById = async (client: GraphQLClient, id: string) =>
    (await client.data(`query($id: ID!) { file(id: $id) { ${FILE_FIELDS} } }`, { id })).file;

  before(async () => {
    [server, searchServer] = await startServers({}, {});
    alice = await server.admin.newUser();
    bob = await server.admin.newUser();
  });
  after(() => Promise.all([server?.close(), searchServer?.close()]));

  describe('files(first, after, uploadedBefore, search)', () => {
    it('lists newest first with a totalCount, and newestFile() is the head of the list', async () => {
      const uploaded = [];
      const prefix = `order-${tag()}`;
      for (let i = 0; i < 4; i++) uploaded.push(await uploadFile(alice, randomFile(50 + i), `${prefix}-${i}.txt`));
      const all = await listAll(alice);
      const times = all.map((n) => Date.parse(n.uploadedAt));
      for (let i = 1; i < times.length; i++) assert.ok(times[i - 1] >= times[i], `newest first at ${i}: ${all[i - 1].uploadedAt} then ${all[i].uploadedAt}`);
      const page = await list(alice, { first: 2 });
      assert.equal(page.totalCount, all.length);
      assert.equal(page.edges.length, 2);
      assert.equal(page.pageInfo.hasNextPage, true);
      assert.equal(page.pageInfo.endCursor, page.edges[1].cursor);
      assert.equal(page.edges[0].node.id, uploaded[3].id, 'the last upload is the newest');

      const { newestFile } = await alice.data(`{ newestFile { id name } }`);
      assert.equal(newestFile.id, uploaded[3].id);

      const scoped = await list(alice, { search: prefix });
      assert.equal(scoped.totalCount, 4);
      assert.deepEqual(scoped.edges.map((e) => e.node.id), uploaded.map((f) => f.id).reverse());
      assert.equal(scoped.pageInfo.hasNextPage, false);
    });

    it('pages without duplicates or gaps while new files are added between pages', async () => {
      const prefix = `page-${tag()}`;
      const originals = [];
      for (let i = 0; i < 7; i++) originals.push(await uploadFile(alice, randomFile(20), `${prefix}-${i}.bin`));
      const before = await list(alice, { first: 100, search: prefix });
      assert.equal(before.totalCount, 7);
      const expected = before.edges.map((e) => e.node.id);
      assert.deepEqual([...expected].sort(), originals.map((f) => f.id).sort());

      const page1 = await list(alice, { first: 3, search: prefix });
      assert.deepEqual(page1.edges.map((e) => e.node.id), expected.slice(0, 3));
      assert.equal(page1.pageInfo.hasNextPage, true);

      const page2Before = await list(alice, { first: 3, after: page1.pageInfo.endCursor, search: prefix });
      const added1 = await uploadFile(bob, randomFile(20), `${prefix}-new-1.bin`);
      const page2 = await list(alice, { first: 3, after: page1.pageInfo.endCursor, search: prefix });
      assert.deepEqual(page2.edges.map((e) => e.node.id), expected.slice(3, 6));
      assert.deepEqual(page2, { ...page2Before, totalCount: 8 }, 'a page after the cursor is unchanged by an insert (only the count grows)');
      assert.equal(page2.pageInfo.hasNextPage, true);

      const added2 = await uploadFile(bob, randomFile(20), `${prefix}-new-2.bin`);
      const page3 = await list(alice, { first: 3, after: page2.pageInfo.endCursor, search: prefix });
      assert.deepEqual(page3.edges.map((e) => e.node.id), expected.slice(6));
      assert.equal(page3.pageInfo.hasNextPage, false);
      assert.equal(page3.totalCount, 9);

      const walked = [...page1.edges, ...page2.edges, ...page3.edges].map((e) => e.node.id);
      assert.deepEqual(walked, expected, 'every original exactly once, in order');
      assert.ok(!walked.includes(added1.id) && !walked.includes(added2.id), 'files added meanwhile do not appear in later pages');

      const fresh = await list(alice, { first: 3, search: prefix });
      assert.deepEqual(fresh.edges.map((e) => e.node.id), [added2.id, added1.id, expected[0]], 'new files land on a fresh first page');
    });

    it('breaks ties on identical upload times without losing or repeating files', async () => {
      const prefix = `tie-${tag()}`;
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push((await uploadFile(alice, randomFile(10), `${prefix}-${i}.bin`)).id);
      const instant = new Date(Date.now() - 1000);
      for (const id of ids) await setUploadedAt(id, instant);
      const seen: string[] = [];
      let cursor: string | null = null;
      for (let pages = 0; pages < 10; pages++) {
        const page: Page = await list(alice, { first: 2, after: cursor, search: prefix });
        seen.push(...page.edges.map((e) => e.node.id));
        if (!page.pageInfo.hasNextPage) break;
        cursor = page.pageInfo.endCursor;
      }
      assert.equal(seen.length, 5, `saw ${JSON.stringify(seen)}`);
      assert.equal(new Set(seen).size, 5, 'no duplicates');
      assert.deepEqual([...seen].sort(), [...ids].sort());
    });

    it('searches names case-insensitively, with % _ quotes and backslashes as plain characters', async () => {
      const s = tag();
      const named = async (name: string) => (await uploadFile(alice, randomFile(10), name)).name as string;
      const sale = await named(`50%_off's ${s}.txt`);
      const quoted = await named(`say "hi" ${s}.txt`);
      const upper = await named(`UPPER-${s}.TXT`);
      const plain = await named(`plainAB${s}.txt`);
      assert.equal(sale, `50%_off's ${s}.txt`);

      const search = async (term: string) => (await listAll(alice, { search: term })).map((n) => n.name);
      assert.deepEqual(await search(`%_off's ${s}`), [sale], '%_ is a literal substring');
      assert.deepEqual(await search(`50%_OFF'S ${s}`), [sale], 'case-insensitive, with a quote');
      assert.deepEqual(await search(`upper-${s}.txt`), [upper]);
      assert.deepEqual(await search(`"HI" ${s}`), [quoted]);
      assert.deepEqual(await search(`plainab${s}`), [plain]);
      assert.deepEqual(await search(`plain_b${s}`), [], '_ is not a one-character wildcard');
      assert.deepEqual(await search(`plain%${s}`), [], '% is not a wildcard');
      assert.deepEqual(await search(`\\${s}`), [], 'a backslash matches only a backslash');
    });

    it('keeps paging correctly when the file a cursor points at is deleted', async () => {
      const prefix = `del-page-${tag()}`;
      for (let i = 0; i < 5; i++) await uploadFile(alice, randomFile(10), `${prefix}-${i}.bin`);
      const expected = (await list(alice, { first: 100, search: prefix })).edges.map((e) => e.node.id);
      const page1 = await list(alice, { first: 2, search: prefix });
      assert.deepEqual(page1.edges.map((e) => e.node.id), expected.slice(0, 2));
      await alice.data(`mutation($id: ID!) { deleteFile(id: $id) }`, { id: expected[1] });
      const page2 = await list(alice, { first: 2, after: page1.pageInfo.endCursor, search: prefix });
      assert.deepEqual(page2.edges.map((e) => e.node.id), expected.slice(2, 4));
      const page3 = await list(alice, { first: 2, after: page2.pageInfo.endCursor, search: prefix });
      assert.deepEqual(page3.edges.map((e) => e.node.id), expected.slice(4));
      assert.equal(page3.pageInfo.hasNextPage, false);
      assert.equal(page3.totalCount, 4);
    });

    it('matches non-ASCII names regardless of case', async () => {
      const s = tag();
      const name = (await uploadFile(alice, randomFile(10), `Résumé-Ü-${s}.txt`)).name;
      assert.deepEqual((await listAll(alice, { search: `RÉSUMÉ-ü-${s}` })).map((n) => n.name), [name]);
      assert.deepEqual((await listAll(alice, { search: `résumé-Ü-${s}.TXT` })).map((n) => n.name), [name]);
    });

    it('filters strictly before uploadedBefore, and newestFile(uploadedBefore) finds the newest old file', async () => {
      const s = tag();
      const thirtyDaysAgo = new Date(Date.now() - 30 * DAY_MS).toISOString();
      const initiallyOld = (await alice.data(`query($d: DateTime) { newestFile(uploadedBefore: $d) { id } }`, { d: thirtyDaysAgo })).newestFile;
      assert.equal(initiallyOld, null, 'nothing is older than 30 days yet');

      const a = await uploadFile(alice, randomFile(10), `old-a-${s}.txt`);
      const b = await uploadFile(alice, randomFile(10), `old-b-${s}.txt`);
      const c = await uploadFile(alice, randomFile(10), `old-c-${s}.txt`);
      const t = new Date(Date.now() - 40 * DAY_MS);
      t.setUTCMilliseconds(500);
      await setUploadedAt(a.id, t);
      await setUploadedAt(b.id, new Date(t.getTime() - 1));
      await setUploadedAt(c.id, new Date(t.getTime() - 10 * DAY_MS));

      const ids = async (before: string) => (await listAll(alice, { before, search: `-${s}.txt` })).map((n) => n.id);
      assert.deepEqual(await ids(t.toISOString()), [b.id, c.id], 'strict: a file exactly at the instant is excluded');
      assert.deepEqual(await ids(new Date(t.getTime() + 1).toISOString()), [a.id, b.id, c.id]);
      assert.deepEqual(await ids(new Date(t.getTime() - 10 * DAY_MS).toISOString()), []);
      const { files } = await alice.data(`query($d: DateTime) { files(uploadedBefore: $d) { totalCount } }`, { d: t.toISOString() });
      assert.equal(files.totalCount, 2);

      const newestOld = await alice.data(`query($d: DateTime) { newestFile(uploadedBefore: $d) { id name uploadedAt } }`, { d: thirtyDaysAgo });
      assert.equal(newestOld.newestFile.id, a.id);
      assert.equal(Date.parse(newestOld.newestFile.uploadedAt), t.getTime());
      const { newestFile } = await alice.data(`{ newestFile { id } }`);
      assert.notEqual(newestFile.id, a.id, 'the aged file is no longer the newest');
      assert.equal(newestFile.id, (await list(alice, { first: 1 })).edges[0].node.id);
    });

    it('refuses a bad cursor and a page size over 100', async () => {
      expectCode(await alice.request(LIST, { after: 'not-a-cursor' }), 'BAD_USER_INPUT');
      expectCode(await alice.request(LIST, { after: Buffer.from('yesterday|nope').toString('base64url') }), 'BAD_USER_INPUT');
      expectCode(await alice.request(LIST, { first: 101 }), 'BAD_USER_INPUT');
      expectCode(await alice.request(LIST, { first: -1 }), 'BAD_USER_INPUT');
      const ok = await alice.request(LIST, { first: 100 });
      assert.equal(ok.errors, undefined, JSON.stringify(ok.errors));
      expectCode(await server.client.request(LIST, { first: 1 }), 'UNAUTHENTICATED');
    });
  });

  describe('files(search:) over a library of known names', () => {
    // Shared and read-only: the only files on searchServer.
    const SALE = "50%_off's sale.txt";
    const QUOTED = 'say "hi".txt';
    const UPPER = 'UPPER.TXT';
    const PLAIN = 'plainAB.txt';
    const ACCENTED = 'Résumé-Ü.txt';
    const BARE = 'notes';
    let searcher: GraphQLClient;

    before(async () => {
      searcher = searchServer.admin;
      for (const name of [SALE, QUOTED, UPPER, PLAIN, ACCENTED, BARE]) await uploadFile(searcher, randomFile(10), name);
    });

    // [term, the names it matches]: a case-insensitive literal substring, wildcards and quotes included.
    const CASES: [string, string[]][] = [
      ['%', [SALE]],
      ['_', [SALE]],
      ['%_', [SALE]],
      ["'", [SALE]],
      ["50%_OFF'S", [SALE]],
      ['"', [QUOTED]],
      ['"HI"', [QUOTED]],
      ['\\', []],
      ['\\%', []],
      ['plainab', [PLAIN]],
      ['plain_b', []],
      ['plain%', []],
      ['upper.txt', [UPPER]],
      ['RÉSUMÉ-ü', [ACCENTED]],
      ['résumé-Ü.TXT', [ACCENTED]],
      ['.TXT', [ACCENTED, PLAIN, UPPER, QUOTED, SALE]],
      ['notes', [BARE]],
      ['nothing like it', []],
    ];

    it('each term matches exactly the names that contain it, newest first, with the matching totalCount', async () => {
      const failures: string[] = [];
      for (const [term, names] of CASES) {
        const page = await list(searcher, { first: 100, search: term });
        const got = { names: page.edges.map((e) => e.node.name), totalCount: page.totalCount };
        try {
          assert.deepEqual(got, { names, totalCount: names.length });
        } catch {
          failures.push(`${JSON.stringify(term)}: ${JSON.stringify(got)}`);
        }
      }
      assert.deepEqual(failures, []);
    });
  });

  describe('file(id) and updateFile', () => {
    it('reads a file by id, and null for an unknown id', async () => {
      const bytes = randomFile(123);
      const file = await uploadFile(alice, bytes, `read-${tag()}.txt`, { chunkSize: 100, description: 'hello' });
      const found = await fileById(bob, file.id);
      assert.equal(found.id, file.id);
      assert.equal(found.size, 123);
      assert.equal(found.md5, md5(bytes));
      assert.equal(found.description, 'hello');
      assert.equal(found.mimeType, 'text/plain');
      assert.match(found.downloadUrl, new RegExp(`^/files/${file.id}/content\\?token=.+`));
      assert.equal(await fileById(bob, randomUUID()), null);
      assert.equal(await fileById(bob, 'not-a-uuid'), null);
    });

    it('lets the author and an admin change the description, nobody else', async () => {
      const file = await uploadFile(alice, randomFile(10), `update-${tag()}.txt`);
      const update = (client: GraphQLClient, id: string, description: string) =>
        client.request(`mutation($id: ID!, $d: String!) { updateFile(id: $id, description: $d) { id description } }`, { id, d: description });

      const byAuthor = await update(alice, file.id, 'by the author');
      assert.equal(byAuthor.errors, undefined, JSON.stringify(byAuthor.errors));
      assert.equal(byAuthor.data.updateFile.description, 'by the author');

      const byAdmin = await update(server.admin, file.id, 'by an admin');
      assert.equal(byAdmin.errors, undefined, JSON.stringify(byAdmin.errors));
      assert.equal(byAdmin.data.updateFile.description, 'by an admin');

      expectCode(await update(bob, file.id, 'by a stranger'), 'FORBIDDEN');
      assert.equal((await fileById(alice, file.id)).description, 'by an admin', 'a refused update changes nothing');

      expectCode(await update(alice, randomUUID(), 'x'), 'NOT_FOUND');
      expectCode(await server.client.request(`mutation { updateFile(id: "${file.id}", description: "x") { id } }`), 'UNAUTHENTICATED');
    });
  });

  describe('deleteFile', () => {
    const del = (client: GraphQLClient, id: string) => client.request(`mutation($id: ID!) { deleteFile(id: $id) }`, { id });

    it('refuses a non-author non-admin and leaves the row and the bytes', async () => {
      const bytes = randomFile(2000);
      const file = await uploadFile(alice, bytes, `keep-${tag()}.bin`);
      expectCode(await del(bob, file.id), 'FORBIDDEN');
      assert.equal((await fileById(bob, file.id))?.id, file.id);
      assert.equal(md5(await readFile(path.join(server.dataDir, 'files', file.id))), md5(bytes));
      await verifyDownload(bob, file.id, bytes);
    });

    it('lets the author delete: the row, the bytes and the download all go', async () => {
      const s = tag();
      const file = await uploadFile(alice, randomFile(2000), `gone-${s}.bin`);
      const bytesPath = path.join(server.dataDir, 'files', file.id);
      await stat(bytesPath);
      const countBefore = (await list(alice, { first: 1 })).totalCount;

      const result = await del(alice, file.id);
      assert.equal(result.errors, undefined, JSON.stringify(result.errors));
      assert.equal(result.data.deleteFile, true);

      assert.equal(await fileById(alice, file.id), null);
      await assert.rejects(stat(bytesPath), { code: 'ENOENT' }, 'the bytes are gone');
      assert.equal((await list(alice, { first: 1 })).totalCount, countBefore - 1);
      assert.deepEqual((await list(alice, { search: `gone-${s}` })).edges, []);
      assert.equal((await alice.download(`/files/${file.id}/content`)).status, 404);
      assert.equal((await alice.download(file.downloadUrl, {}, false)).status, 404, 'an old download link finds nothing');
      expectCode(await del(alice, file.id), 'NOT_FOUND');
      expectCode(await del(alice, randomUUID()), 'NOT_FOUND');
    });

    it("lets an admin delete someone else's file", async () => {
      const file = await uploadFile(bob, randomFile(500), `admin-del-${tag()}.bin`);
      const result = await del(server.admin, file.id);
      assert.equal(result.errors, undefined, JSON.stringify(result.errors));
      assert.equal(result.data.deleteFile, true);
      assert.equal(await fileById(bob, file.id), null);
      await assert.rejects(stat(path.join(server.dataDir, 'files', file.id)), { code: 'ENOENT' });
    });
  });

  describe('users', () => {
    const CREATE = `mutation($u: String!, $p: String!, $a: Boolean) { createUser(username: $u, password: $p, isAdmin: $a) { id username isAdmin createdAt } }`;
    const CHANGE = `mutation($o: String!, $n: String!) { changePassword(oldPassword: $o, newPassword: $n) }`;

    it('lets an admin create users and admins; usernames are unique regardless of case', async () => {
      const name = `Carol_${tag()}`;
      const created = await server.admin.data(CREATE, { u: name, p: 'carol-password' });
      assert.equal(created.createUser.username, name);
      assert.equal(created.createUser.isAdmin, false);
      const age = Date.now() - Date.parse(created.createUser.createdAt);
      assert.ok(age >= -5000 && age < 60_000, `createdAt ${created.createUser.createdAt} is now`);

      expectCode(await server.admin.request(CREATE, { u: name.toUpperCase(), p: 'another-password' }), 'BAD_USER_INPUT');
      expectCode(await server.admin.request(CREATE, { u: name.toLowerCase(), p: 'another-password' }), 'BAD_USER_INPUT');
      expectCode(await server.admin.request(CREATE, { u: ADMIN.username.toUpperCase(), p: 'another-password' }), 'BAD_USER_INPUT');

      const carol = await server.client.login(name, 'carol-password');
      assert.equal((await carol.data(`{ me { username isAdmin } }`)).me.username, name);

      const admin2 = await server.admin.data(CREATE, { u: `Dave_${tag()}`, p: 'dave-password', a: true });
      assert.equal(admin2.createUser.isAdmin, true);
      const dave = await server.client.login(admin2.createUser.username, 'dave-password');
      const byNewAdmin = await dave.request(CREATE, { u: `Erin_${tag()}`, p: 'erin-password' });
      assert.equal(byNewAdmin.errors, undefined, JSON.stringify(byNewAdmin.errors));
    });

    it('treats usernames as unique regardless of case for non-ASCII letters too', async () => {
      const name = `Éva_${tag()}`;
      await server.admin.data(CREATE, { u: name, p: 'eva-password' });
      expectCode(await server.admin.request(CREATE, { u: name.toLowerCase(), p: 'eva-password' }), 'BAD_USER_INPUT');
      expectCode(await server.admin.request(CREATE, { u: name.toUpperCase(), p: 'eva-password' }), 'BAD_USER_INPUT');
    });

    it('refuses createUser to a non-admin and to nobody', async () => {
      const name = `mallory_${tag()}`;
      expectCode(await bob.request(CREATE, { u: name, p: 'mallory-password', a: true }), 'FORBIDDEN');
      expectCode(await server.client.request(CREATE, { u: name, p: 'mallory-password' }), 'UNAUTHENTICATED');
      expectCode(await server.client.request(`mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }`, { u: name, p: 'mallory-password' }), 'UNAUTHENTICATED');
    });

    it('changes a password only with the old one, and revokes older tokens', async () => {
      const name = `frank_${tag()}`;
      await server.admin.data(CREATE, { u: name, p: 'first-password' });
      const frank = await server.client.login(name, 'first-password');
      const { me } = await frank.data(`{ me { id username isAdmin } }`);
      assert.equal(me.username, name);
      assert.equal(me.isAdmin, false);

      expectCode(await frank.request(CHANGE, { o: 'wrong-password', n: 'second-password' }), 'FORBIDDEN');
      assert.equal((await frank.data(`{ me { id } }`)).me.id, me.id, 'a refused change keeps the token working');

      const changed = await frank.request(CHANGE, { o: 'first-password', n: 'second-password' });
      assert.equal(changed.errors, undefined, JSON.stringify(changed.errors));
      assert.equal(changed.data.changePassword, true);

      expectCode(await frank.request(`{ me { id } }`), 'UNAUTHENTICATED');
      expectCode(await server.client.request(`mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }`, { u: name, p: 'first-password' }), 'UNAUTHENTICATED');
      const again = await server.client.login(name, 'second-password');
      assert.equal((await again.data(`{ me { id } }`)).me.id, me.id);
    });

    it('answers me for the caller and UNAUTHENTICATED without a token', async () => {
      const { me } = await server.admin.data(`{ me { username isAdmin } }`);
      assert.deepEqual(me, { username: ADMIN.username, isAdmin: true });
      expectCode(await server.client.request(`{ me { id } }`), 'UNAUTHENTICATED');
      expectCode(await server.client.withToken('garbage').request(`{ me { id } }`), 'UNAUTHENTICATED');
    });
  });
});
