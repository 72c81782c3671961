import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../src/config';
import { expectCode, expectOk } from './helpers/assert';
import { randomFile, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { startServer, type TestServer } from './helpers/server';
import { completeAndVerify, sendChunks } from './helpers/upload';
import { b64, patch, tusRequest } from './helpers/tus';

const QUOTA = 50_000;
const USAGE = `{ me { id quotaBytes usedBytes } }`;
const SET_QUOTA = `mutation($id: ID!, $q: SafeInt) { setUserQuota(userId: $id, quotaBytes: $q) { id quotaBytes usedBytes } }`;

describe(`quotas (${databaseKind})`, () => {
  let server: TestServer;

  before(async () => {
    // Every user created from now on starts with a 50 kB quota; the first admin has none.
    server = await startServer({ DEFAULT_USER_QUOTA: '50KB' });
  });
  after(() => server?.close());

  /** What the tables say the user uses: their files plus their uploads in progress, summed by the test itself. */
  async function usedFromTables(userId: string): Promise<number> {
    const [files] = await server.sql('select coalesce(sum(size), 0) as n from files where author_id = ?', [userId]);
    const uploads = await server.sql(`select total_size from chunked_uploads where owner_id = ? and status = 'UPLOADING'`, [userId]);
    return Number(files.n) + uploads.reduce((sum: number, row: { total_size: string | number }) => sum + Number(row.total_size), 0);
  }

  /** usedBytes as the API reports it, checked against the tables; returned. */
  async function usage(client: GraphQLClient, expected?: number): Promise<{ id: string; quotaBytes: number | null; usedBytes: number }> {
    const { me } = await client.data(USAGE);
    assert.equal(me.usedBytes, await usedFromTables(me.id), 'usedBytes is the sum of the files and the uploads in progress');
    if (expected !== undefined) assert.equal(me.usedBytes, expected);
    return me;
  }

  it('gives new users DEFAULT_USER_QUOTA, the first admin none, and refuses an upload past it with availableBytes', async () => {
    assert.equal((await usage(server.admin, 0)).quotaBytes, null);
    const alice = await server.admin.newUser();
    assert.equal((await usage(alice, 0)).quotaBytes, QUOTA);

    await alice.start('a.bin', 30_000);
    const refused = expectCode(await alice.startUpload({ filename: 'b.bin', totalSize: 20_001 }), 'QUOTA_EXCEEDED');
    assert.equal(refused.extensions?.availableBytes, 20_000);
    // Exactly what is left still fits; then nothing does, not even one byte.
    await alice.start('b.bin', 20_000);
    assert.equal(expectCode(await alice.startUpload({ filename: 'c.bin', totalSize: 1 }), 'QUOTA_EXCEEDED').extensions?.availableBytes, 0);
    // An empty file costs nothing, so it is never refused.
    await alice.start('empty.bin', 0);
    await usage(alice, QUOTA);
  });

  it('lets twenty concurrent startUploads reserve no more than the quota together', async () => {
    const bob = await server.admin.newUser();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => bob.startUpload({ filename: `race-${i}.bin`, totalSize: 7_000 })));
    const started = results.filter((r) => !r.errors);
    const refused = results.filter((r) => r.errors?.[0]?.extensions?.code === 'QUOTA_EXCEEDED');
    assert.equal(started.length, Math.floor(QUOTA / 7_000), 'as many as fit, no more');
    assert.equal(refused.length, 20 - started.length, JSON.stringify(results.filter((r) => r.errors).map((r) => r.errors)));
    await usage(bob, started.length * 7_000);
  });

  it('gives the space back on abort, expiry and delete; completion turns the reservation into the file', async () => {
    const carol = await server.admin.newUser();
    const aborted = await carol.start('aborted.bin', 10_000);
    const expiring = await carol.start('expiring.bin', 15_000);
    const bytes = randomFile(20_000);
    const kept = await carol.start('kept.bin', bytes.length);
    await usage(carol, 45_000);

    expectOk(await carol.abort(aborted.id));
    await usage(carol, 35_000);

    await server.sql(`update chunked_uploads set expires_at = now() - interval '1 second' where id = ?`, [expiring.id]);
    const report = await server.app.services.cleanup.run();
    assert.equal(report.expiredUploads, 1);
    await usage(carol, 20_000);

    await sendChunks(carol, kept.id, bytes, 0, bytes.length, 8_000);
    const file = await completeAndVerify(carol, kept.id, bytes);
    await usage(carol, 20_000);
    assert.equal(expectCode(await carol.startUpload({ filename: 'more.bin', totalSize: 30_001 }), 'QUOTA_EXCEEDED').extensions?.availableBytes, 30_000);

    // An admin deleting the file gives its author the space back.
    expectOk(await server.admin.request(`mutation($id: ID!) { deleteFile(id: $id) }`, { id: file.id }));
    await usage(carol, 0);
  });

  it('reserves what is left for a tus upload of deferred length, and the declared length once it is known', async () => {
    const dave = await server.admin.newUser();
    await dave.start('other.bin', 10_000);
    const created = await tusRequest(`${dave.url}/tus/`, 'POST', {
      token: dave.token,
      headers: { 'upload-defer-length': '1', 'upload-metadata': `filename ${b64('deferred.bin')}` },
    });
    assert.equal(created.status, 201, await created.text());
    const url = `${dave.url}/tus/${created.headers.get('location')!.split('/').pop()}`;
    await usage(dave, QUOTA);

    // Declaring more than the quota allows is refused (413, like tus's too large) and changes nothing.
    const tooLong = await tusRequest(url, 'PATCH', {
      token: dave.token,
      headers: { 'upload-offset': '0', 'upload-length': '40001', 'content-type': 'application/offset+octet-stream' },
      body: randomFile(10),
    });
    assert.equal(tooLong.status, 413, await tooLong.text());
    await usage(dave, QUOTA);

    const bytes = randomFile(5_000);
    const declared = await tusRequest(url, 'PATCH', {
      token: dave.token,
      headers: { 'upload-offset': '0', 'upload-length': String(bytes.length), 'content-type': 'application/offset+octet-stream' },
      body: bytes.subarray(0, 1_000),
    });
    assert.equal(declared.status, 204, await declared.text());
    await usage(dave, 15_000);
    assert.equal((await patch(dave, url, 1_000, bytes.subarray(1_000))).status, 204);
    // The last byte completed it: the file now holds what the upload had reserved.
    await usage(dave, 15_000);

    // With no room left, a deferred upload is refused up front.
    await dave.start('filler.bin', 35_000);
    const full = await tusRequest(`${dave.url}/tus/`, 'POST', {
      token: dave.token,
      headers: { 'upload-defer-length': '1', 'upload-metadata': `filename ${b64('nothing-left.bin')}` },
    });
    assert.equal(full.status, 413, await full.text());
  });

  it('setUserQuota: admins set and lift a quota (even below what is used), refuse bad values, and the user sees it', async () => {
    const erin = await server.admin.newUser();
    const { id } = await usage(erin);
    await erin.start('held.bin', 40_000);

    const lowered = (await server.admin.data(SET_QUOTA, { id, q: 1_000 })).setUserQuota;
    assert.deepEqual(lowered, { id, quotaBytes: 1_000, usedBytes: 40_000 });
    assert.equal(expectCode(await erin.startUpload({ filename: 'x.bin', totalSize: 1 }), 'QUOTA_EXCEEDED').extensions?.availableBytes, 0);

    assert.equal((await server.admin.data(SET_QUOTA, { id, q: null })).setUserQuota.quotaBytes, null);
    await erin.start('unlimited.bin', 10_000_000);
    assert.equal((await usage(erin)).usedBytes, 10_040_000);

    expectCode(await server.admin.request(SET_QUOTA, { id, q: -1 }), 'BAD_USER_INPUT');
    expectCode(await server.admin.request(SET_QUOTA, { id: '00000000-0000-4000-8000-000000000000', q: 1 }), 'NOT_FOUND');
    expectCode(await erin.request(SET_QUOTA, { id, q: 1 }), 'FORBIDDEN');
    // Another user's usage is theirs and the admins' to see.
    const empty = await server.admin.start('admins-empty.bin', 0);
    const file = await completeAndVerify(server.admin, empty.id, Buffer.alloc(0));
    const peek = await erin.request(`query($id: ID!) { file(id: $id) { author { username usedBytes } } }`, { id: file.id });
    assert.equal(peek.errors?.[0]?.extensions?.code, 'FORBIDDEN');
  });
});

describe('DEFAULT_USER_QUOTA', () => {
  it('takes bytes or a size with its unit, and names itself when it is neither', () => {
    assert.equal(loadConfig({ DEFAULT_USER_QUOTA: '10GiB' }).defaultUserQuota, 10 * 1024 ** 3);
    assert.equal(loadConfig({ DEFAULT_USER_QUOTA: '1.5 GB' }).defaultUserQuota, 1_500_000_000);
    assert.equal(loadConfig({ DEFAULT_USER_QUOTA: '4096' }).defaultUserQuota, 4096);
    assert.equal(loadConfig({}).defaultUserQuota, null);
    for (const bad of ['lots', '-1', '10 GiBs', '0.5']) {
      assert.throws(() => loadConfig({ DEFAULT_USER_QUOTA: bad }), (err: unknown) => err instanceof ConfigError && /DEFAULT_USER_QUOTA/.test(err.message), bad);
    }
  });
});
