import assert from 'node:assert/strict';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MikroORM } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { after, before, describe, it } from 'node:test';
import { UploadClient, UploadError, type FetchLike } from '../client/src/node';
import { runCli, show, UPLOAD_CLI } from './helpers/cli';
import { expectCode, expectOk } from './helpers/assert';
import { md5, randomFile, tag, type GraphQLClient } from './helpers/client';
import { createTestDatabase, NEEDS_POSTGRES } from './helpers/database';
import { migrations } from '../src/db/migrations';
import { ormOptions } from '../src/db/orm';
import { ProcessFixture } from './helpers/process';
import { S3_SKIP, s3Env } from './helpers/s3';
import { startServer, startServers, type TestServer } from './helpers/server';
import { eventually, sleep } from './helpers/timing';
import { completeAndVerify, sendChunks } from './helpers/upload';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const PART = 5 * MiB;

const START = `mutation($input: StartUploadInput!) { startUpload(input: $input) { id direct partSize partCount status offset } }`;
const SIGN = `mutation($id: ID!, $parts: [Int!]!, $md5s: [String!]) {
  signUploadParts(uploadId: $id, partNumbers: $parts, partMd5s: $md5s) { partNumber url headers { name value } expiresAt } }`;
const COMPLETE = `mutation($id: ID!, $md5: String!) { completeUpload(uploadId: $id, md5: $md5) { id name size md5 status statusReason } }`;
const FILE = `query($id: ID!) { file(id: $id) { id name size md5 status statusReason } }`;
const MISSING = `query($id: ID!) { upload(id: $id) { id status missingParts } }`;

interface Signed {
  partNumber: number;
  url: string;
  headers: { name: string; value: string }[];
  expiresAt: string;
}

function part(bytes: Buffer, n: number, partSize = PART): Buffer {
  return bytes.subarray((n - 1) * partSize, Math.min(n * partSize, bytes.length));
}

async function startDirect(client: GraphQLClient, filename: string, size: number, partSize = PART): Promise<{ id: string; direct: boolean; partCount: number }> {
  return expectOk(await client.request(START, { input: { filename, totalSize: size, partSize, direct: true } })).startUpload;
}

async function sign(client: GraphQLClient, id: string, parts: number[], md5s?: string[]): Promise<Signed[]> {
  return expectOk(await client.request(SIGN, { id, parts, md5s })).signUploadParts;
}

/** PUTs one part to its presigned URL with exactly the headers given; the store's answer. */
async function put(signed: Signed, body: Buffer): Promise<{ status: number; etag: string | null; text: string }> {
  const res = await fetch(signed.url, { method: 'PUT', headers: Object.fromEntries(signed.headers.map((h) => [h.name, h.value])), body });
  return { status: res.status, etag: res.headers.get('etag'), text: await res.text() };
}

/** Signs every part, then PUTs them all at once in reverse order. */
async function sendAllParts(client: GraphQLClient, id: string, bytes: Buffer, partCount: number): Promise<void> {
  const numbers = Array.from({ length: partCount }, (_, i) => partCount - i);
  const signed = await sign(client, id, numbers);
  const answers = await Promise.all(signed.map((s) => put(s, part(bytes, s.partNumber))));
  for (const answer of answers) assert.equal(answer.status, 200, answer.text);
}

async function fileStatus(client: GraphQLClient, id: string): Promise<{ status: string; statusReason: string | null; name: string; md5: string }> {
  return (await client.data(FILE, { id })).file;
}

async function settled(client: GraphQLClient, id: string, timeoutMs = 60_000): Promise<{ status: string; statusReason: string | null; name: string }> {
  let file = await fileStatus(client, id);
  await eventually(async () => {
    file = await fileStatus(client, id);
    assert.notEqual(file.status, 'VERIFYING');
  }, timeoutMs);
  return file;
}

function bucketClient(env: Record<string, string>): S3Client {
  return new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY },
  });
}

async function objectExists(env: Record<string, string>, key: string): Promise<boolean> {
  const s3 = bucketClient(env);
  try {
    await s3.send(new HeadObjectCommand({ Bucket: env.S3_BUCKET, Key: key }));
    return true;
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw err;
  } finally {
    s3.destroy();
  }
}

describe('the direct uploads migration', () => {
  it('makes every existing file READY and keeps names unique among files that are not REJECTED', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'direct-migration-'));
    const database = await createTestDatabase();
    const { options, embedded } = ormOptions({ databaseUrl: database.url, dataDir });
    const orm = await MikroORM.init({ ...options, logger: () => {} });
    try {
      const sql = (query: string, params: unknown[] = []) => orm.em.getConnection().execute(query, params);
      const mine = migrations.findIndex((m) => m.name === 'Migration20261203120000_direct_uploads');
      await orm.getMigrator().up({ to: migrations[mine - 1].name });
      const userId = randomUUID();
      const fileId = randomUUID();
      await sql(`insert into users (id, username, username_key, password_hash, created_at) values (?, 'old', 'old', 'x', now())`, [userId]);
      await sql(`insert into files (id, name, size, md5, uploaded_at, author_id) values (?, 'old.bin', 3, ?, now(), ?)`, [fileId, md5(Buffer.from('abc')), userId]);
      await orm.getMigrator().up();
      assert.deepEqual(await sql(`select status, status_reason from files where id = ?`, [fileId]), [{ status: 'READY', status_reason: null }]);
      await assert.rejects(sql(`insert into files (id, name, size, md5, uploaded_at) values (?, 'OLD.bin', 1, 'x', now())`, [randomUUID()]), /files_name_lower_unique/);
      await sql(`update files set status = 'REJECTED' where id = ?`, [fileId]);
      await sql(`insert into files (id, name, size, md5, uploaded_at) values (?, 'OLD.bin', 1, 'x', now())`, [randomUUID()]);
    } finally {
      await orm.close(true);
      if (embedded && !embedded.closed) await embedded.close();
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('direct uploads on disk storage', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.close());

  it('answers direct: false, so the client sends the parts through the server, and files READY', async () => {
    const alice = await server.admin.newUser();
    assert.equal((await alice.data('{ serverLimits { directUploads } }')).serverLimits.directUploads, false);
    const bytes = randomFile(PART + 10);
    const upload = await startDirect(alice, `disk-${tag()}.bin`, bytes.length);
    assert.equal(upload.direct, false);
    assert.equal(upload.partCount, 2);
    expectCode(await alice.request(SIGN, { id: upload.id, parts: [1] }), 'BAD_USER_INPUT');
    expectCode(await alice.uploadChunk(upload.id, 0, bytes), 'BAD_USER_INPUT', 'an upload in parts takes no chunks');
    for (const n of [2, 1]) expectOk(await alice.uploadPart(upload.id, n, part(bytes, n)));
    const file = await completeAndVerify(alice, upload.id, bytes);
    assert.equal((await fileStatus(alice, file.id)).status, 'READY');
  });

  it('refuses direct without a partSize, with parts under 5 MiB, or (not granted) with parts past MAX_CHUNK_SIZE', async () => {
    const alice = await server.admin.newUser();
    expectCode(await alice.request(START, { input: { filename: 'x.bin', totalSize: 10, direct: true } }), 'BAD_USER_INPUT');
    expectCode(await alice.request(START, { input: { filename: 'x.bin', totalSize: 10 * MiB, direct: true, partSize: MiB } }), 'BAD_USER_INPUT');
    const tooLarge = expectCode(await alice.request(START, { input: { filename: 'x.bin', totalSize: GiB, direct: true, partSize: 65 * MiB } }), 'BAD_USER_INPUT');
    assert.match(tooLarge.message, /does not grant direct uploads/);
  });
});

describe('direct uploads to S3', { skip: S3_SKIP }, () => {
  let server: TestServer;
  let shortLinks: TestServer;
  let alice: GraphQLClient;

  before(async () => {
    [server, shortLinks] = await startServers(s3Env(), { ...s3Env(), DIRECT_URL_TTL: '1' });
    alice = await server.admin.newUser();
  });
  after(async () => {
    await server?.close();
    await shortLinks?.close();
  });

  it('takes parts PUT at once and out of order, answers VERIFYING (downloads 409), then READY with the md5', async () => {
    assert.equal((await alice.data('{ serverLimits { directUploads } }')).serverLimits.directUploads, true);
    const bytes = randomFile(3 * PART + 12345);
    const upload = await startDirect(alice, `direct-${tag()}.bin`, bytes.length);
    assert.deepEqual([upload.direct, upload.partCount], [true, 4]);
    await sendAllParts(alice, upload.id, bytes, upload.partCount);
    assert.deepEqual((await alice.data(MISSING, { id: upload.id })).upload.missingParts, []);

    // The verifier held back, so the file is seen while VERIFYING.
    await server.app.services.verifier.stop();
    const file = expectOk(await alice.request(COMPLETE, { id: upload.id, md5: md5(bytes) })).completeUpload;
    assert.equal(file.status, 'VERIFYING');
    assert.equal(file.size, bytes.length);
    const early = await alice.download(`/files/${file.id}/content`);
    assert.equal(early.status, 409);
    assert.equal(JSON.parse(early.body.toString()).errors[0].extensions.code, 'FILE_NOT_READY');
    const listed = await alice.data('{ files(first: 100) { edges { node { id } } } }');
    assert.ok(!listed.files.edges.some((e: { node: { id: string } }) => e.node.id === file.id), 'files lists READY files only');
    server.app.services.verifier.start();

    const done = await settled(alice, file.id);
    assert.equal(done.status, 'READY');
    assert.equal(done.statusReason, null);
    const download = await alice.download(`/files/${file.id}/content`);
    assert.equal(download.status, 200);
    assert.equal(md5(download.body), md5(bytes));
    // Completing again (a client that lost the answer) gives the same file.
    assert.equal(expectOk(await alice.request(COMPLETE, { id: upload.id, md5: md5(bytes) })).completeUpload.id, file.id);
  });

  it('lists missing parts and refuses completion until they are there', async () => {
    const bytes = randomFile(2 * PART + 1);
    const upload = await startDirect(alice, `missing-${tag()}.bin`, bytes.length);
    const [second] = await sign(alice, upload.id, [2]);
    assert.equal((await put(second, part(bytes, 2))).status, 200);
    assert.deepEqual((await alice.data(MISSING, { id: upload.id })).upload.missingParts, [1, 3]);
    // Bytes through the server would make parts of their own in the same multipart upload.
    expectCode(await alice.uploadChunk(upload.id, 0, part(bytes, 1)), 'BAD_USER_INPUT');
    const refused = expectCode(await alice.request(COMPLETE, { id: upload.id, md5: md5(bytes) }), 'UPLOAD_INCOMPLETE');
    assert.deepEqual(refused.extensions?.missingParts, [1, 3]);
    // A first part of the wrong size is refused at completion; sent again, the upload completes.
    const [first, third] = await sign(alice, upload.id, [1, 3]);
    assert.equal((await put(first, part(bytes, 1).subarray(1))).status, 200);
    assert.equal((await put(third, part(bytes, 3))).status, 200);
    expectCode(await alice.request(COMPLETE, { id: upload.id, md5: md5(bytes) }), 'BAD_USER_INPUT');
    const [again] = await sign(alice, upload.id, [1]);
    assert.equal((await put(again, part(bytes, 1))).status, 200);
    const file = expectOk(await alice.request(COMPLETE, { id: upload.id, md5: md5(bytes) })).completeUpload;
    assert.equal((await settled(alice, file.id)).status, 'READY');
  });

  it('signs a part md5 into the URL: the store refuses other bytes', async () => {
    const bytes = randomFile(PART + 100);
    const upload = await startDirect(alice, `md5-${tag()}.bin`, bytes.length);
    const [one, two] = await sign(alice, upload.id, [1, 2], [md5(part(bytes, 1)), md5(part(bytes, 2))]);
    assert.deepEqual(one.headers.map((h) => h.name), ['Content-MD5']);
    const damaged = Buffer.from(part(bytes, 1));
    damaged[7] ^= 1;
    const refused = await put(one, damaged);
    assert.equal(refused.status, 400, refused.text);
    assert.match(refused.text, /BadDigest/);
    assert.equal((await put(one, part(bytes, 1))).status, 200);
    assert.equal((await put(two, part(bytes, 2))).status, 200);
    const file = expectOk(await alice.request(COMPLETE, { id: upload.id, md5: md5(bytes) })).completeUpload;
    assert.equal((await settled(alice, file.id)).status, 'READY');
  });

  it('rejects a file whose md5 differs: bytes deleted from the bucket, name free again', async () => {
    const name = `wrong-${tag()}.bin`;
    const bytes = randomFile(PART + 77);
    const upload = await startDirect(alice, name, bytes.length);
    await sendAllParts(alice, upload.id, bytes, upload.partCount);
    const claimed = md5(Buffer.from('not these bytes'));
    const file = expectOk(await alice.request(COMPLETE, { id: upload.id, md5: claimed })).completeUpload;
    assert.equal(file.name, name);
    const done = await settled(alice, file.id);
    assert.equal(done.status, 'REJECTED');
    assert.match(done.statusReason ?? '', new RegExp(md5(bytes)));
    await eventually(async () => assert.equal(await objectExists(server.env, `files/${file.id}`), false), 10_000);
    assert.equal((await alice.download(`/files/${file.id}/content`)).status, 409);
    const rejected = await alice.data('{ files(first: 100, status: REJECTED) { edges { node { id } } } }');
    assert.ok(rejected.files.edges.some((e: { node: { id: string } }) => e.node.id === file.id));

    // The name is free: the next file of that name takes it as it is.
    const again = await alice.start(name, 3);
    await sendChunks(alice, again.id, Buffer.from('abc'), 0, 3, 3);
    assert.equal((await completeAndVerify(alice, again.id, Buffer.from('abc'))).name, name);
  });

  it('the SDK sends parts straight to the bucket, retries a failed PUT, resumes after a pause, and ends READY', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'direct-sdk-'));
    try {
      const bytes = randomFile(4 * PART + 4321);
      const file = path.join(dir, `sdk-${tag()}.bin`);
      await writeFile(file, bytes);
      // The first PUT to the store fails as a dropped connection would.
      let puts = 0;
      let failedOnce = false;
      const flaky: FetchLike = async (url, init) => {
        if (init.method === 'PUT') {
          puts++;
          if (!failedOnce) {
            failedOnce = true;
            throw new TypeError('fetch failed');
          }
        }
        return fetch(url, init);
      };
      const client = new UploadClient({ url: server.url, token: alice.token, fetch: flaky, retry: { minDelayMs: 50, maxDelayMs: 200 } });
      const pause = new AbortController();
      const retries: string[] = [];
      const first = client.upload(file, {
        partSize: PART,
        parallelParts: 2,
        signal: pause.signal,
        onRetry: (err) => retries.push(err.code),
        onProgress: (p) => {
          if (p.bytesUploaded >= 2 * PART) pause.abort(new DOMException('paused', 'AbortError'));
        },
      });
      await assert.rejects(first, (err: Error) => err.name === 'AbortError');
      assert.deepEqual(retries, ['NETWORK_ERROR']);
      const putsBeforeResume = puts;

      const phases = new Set<string>();
      const result = await client.upload(file, { partSize: PART, onProgress: (p) => phases.add(p.phase) });
      assert.ok(result.resumedFrom >= 2 * PART, `resumed at ${result.resumedFrom}`);
      assert.ok(puts - putsBeforeResume <= 3, `only the missing parts were sent again (${puts - putsBeforeResume} PUTs)`);
      assert.ok(phases.has('verifying'));
      assert.equal(result.file.status, 'READY');
      assert.equal(result.md5, md5(bytes));
      const download = await alice.download(`/files/${result.file.id}/content`);
      assert.equal(md5(download.body), md5(bytes));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the CLI uploads directly and reports the verified file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'direct-cli-'));
    try {
      const bytes = randomFile(PART + 1);
      const file = path.join(dir, `cli-${tag()}.bin`);
      await writeFile(file, bytes);
      const run = await runCli(['--url', server.url, '--token', alice.token!, '--quiet', '--state-file', path.join(dir, 'state.json'), file], {}, { script: UPLOAD_CLI });
      assert.equal(run.code, 0, show(run));
      const line = JSON.parse(run.stdout.trim());
      assert.equal(line.status, 'READY');
      assert.equal(line.md5, md5(bytes));
      assert.equal((await alice.data(`query($id: ID!) { upload(id: $id) { direct } }`, { id: line.id })).upload.direct, true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the SDK reports a file the server rejected as REJECTED', async () => {
    // Without part md5s, a part damaged on its way reaches the bucket; the server's read sees it.
    const bytes = randomFile(PART + 3);
    const damaging: FetchLike = async (url, init) => {
      if (init.method === 'PUT' && new URL(url).searchParams.get('partNumber') === '2') {
        const body = Buffer.from(init.body as Uint8Array);
        body[0] ^= 1;
        return fetch(url, { ...init, body });
      }
      return fetch(url, init);
    };
    const client = new UploadClient({ url: server.url, token: alice.token, fetch: damaging });
    const rejected = await client.upload(new Blob([bytes]), { filename: `damaged-${tag()}.bin`, partSize: PART, verifyChunks: false }).then(
      () => assert.fail('the upload should have been rejected'),
      (err: unknown) => err,
    );
    assert.ok(rejected instanceof UploadError);
    assert.equal(rejected.code, 'REJECTED');
    assert.match(rejected.message, /md5/);
  });

  it("answers NOT_FOUND for another user's upload", async () => {
    const bob = await server.admin.newUser();
    const upload = await startDirect(alice, `mine-${tag()}.bin`, PART);
    expectCode(await bob.request(SIGN, { id: upload.id, parts: [1] }), 'NOT_FOUND');
    expectCode(await server.admin.request(SIGN, { id: upload.id, parts: [1] }), 'NOT_FOUND');
    expectCode(await bob.request(COMPLETE, { id: upload.id, md5: md5(Buffer.alloc(0)) }), 'NOT_FOUND');
  });

  it('signs an expired link again (DIRECT_URL_TTL=1)', async () => {
    const carol = await shortLinks.admin.newUser();
    const bytes = randomFile(PART);
    const upload = await startDirect(carol, `expired-${tag()}.bin`, bytes.length);
    const [stale] = await sign(carol, upload.id, [1]);
    assert.ok(Date.parse(stale.expiresAt) - Date.now() <= 1000);
    await sleep(2500);
    const refused = await put(stale, bytes);
    assert.equal(refused.status, 403, refused.text);
    // A fresh link lives 1 s too: on a loaded machine the PUT may arrive after it, so sign again then.
    let stored = { status: 0, etag: null as string | null, text: '' };
    for (let attempt = 0; attempt < 5 && stored.status !== 200; attempt++) {
      const [fresh] = await sign(carol, upload.id, [1]);
      stored = await put(fresh, bytes);
    }
    assert.equal(stored.status, 200, stored.text);
    const file = expectOk(await carol.request(COMPLETE, { id: upload.id, md5: md5(bytes) })).completeUpload;
    assert.equal((await settled(carol, file.id)).status, 'READY');
  });
});

describe('verification across processes', { skip: S3_SKIP }, () => {
  const fixture = new ProcessFixture();

  it('finishes a verification cut off by SIGKILL after the restart', async () => {
    // A slow read (2 MiB/s) so the kill lands in the middle of it; a short lease to take over soon.
    const node = await fixture.instance({ ...s3Env(), VERIFY_MAX_RATE: String(2 * MiB), UPLOAD_LOCK_TTL: '3' });
    const alice = await node.admin.newUser();
    const bytes = randomFile(2 * PART + 999);
    const upload = await startDirect(alice, `crash-${tag()}.bin`, bytes.length);
    await sendAllParts(alice, upload.id, bytes, upload.partCount);
    const file = expectOk(await alice.request(COMPLETE, { id: upload.id, md5: md5(bytes) })).completeUpload;
    assert.equal(file.status, 'VERIFYING');
    await eventually(() => assert.ok(node.server.logs.some((l) => l.includes('"msg":"verification started"'))), 20_000);
    await node.kill();
    assert.ok(!node.server.logs.some((l) => l.includes('"msg":"verification finished"')), 'killed before the verdict');

    await node.restart();
    const done = await settled(alice, file.id, 60_000);
    if (process.env.DEBUG_DIRECT) console.log(node.server.logs.map((l) => l.slice(0, 200)).join('\n'));
    assert.equal(done.status, 'READY');
    const restarted = node.server.logs.filter((l) => l.includes('"msg":"verification started"')).map((l) => JSON.parse(l));
    assert.deepEqual(restarted.map((l) => [l.fileId, l.attempt]), [[file.id, 2]], 'the job was taken up again after the restart');
  });

  it('verifies once with two instances polling one database', { skip: NEEDS_POSTGRES }, async () => {
    const database = await fixture.database();
    const env = { ...s3Env(), VERIFY_POLL_MS: '100', VERIFY_MAX_RATE: String(4 * MiB) };
    const a = await fixture.instance(env, undefined, database);
    const b = await fixture.instance(env, undefined, database);
    const alice = await a.admin.newUser();
    const bytes = randomFile(2 * PART + 5);
    const upload = await startDirect(alice, `twice-${tag()}.bin`, bytes.length);
    await sendAllParts(alice, upload.id, bytes, upload.partCount);
    const file = expectOk(await alice.request(COMPLETE, { id: upload.id, md5: md5(bytes) })).completeUpload;
    assert.equal((await settled(alice, file.id)).status, 'READY');
    // Both went on polling meanwhile: give a second verdict the chance to show.
    await sleep(500);
    const started = [...a.server.logs, ...b.server.logs].filter((l) => l.includes('"msg":"verification started"'));
    assert.equal(started.length, 1, 'one instance read the file');
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const { rows } = await client.query('select attempts, finished_at from file_verifications where file_id = $1', [file.id]);
      assert.equal(rows.length, 1);
      assert.equal(rows[0].attempts, 1);
      assert.ok(rows[0].finished_at);
    } finally {
      await client.end();
    }
  });
});
