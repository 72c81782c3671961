import assert from 'node:assert/strict';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectCode, expectOk } from './helpers/assert';
import { md5, randomFile, type GraphQLClient } from './helpers/client';
import { NEEDS_POSTGRES } from './helpers/database';
import { openPartRequest } from './helpers/raw-chunk';
import { S3_SKIP, s3Env } from './helpers/s3';
import { ProcessFixture } from './helpers/process';
import { startServer, type TestServer } from './helpers/server';
import { eventually, sleep } from './helpers/timing';
import { verifyDownload } from './helpers/upload';

/**
 * Parallel parts (API.md "Parallel parts"): parts of one upload in any order and several at
 * once, the offset is the contiguous prefix, the whole-file md5 checked at completion.
 */

const KiB = 1024;
const PART = 64 * KiB;
const START = `mutation($input: StartUploadInput!) { startUpload(input: $input) { id partSize partCount offset missingParts } }`;
const STATE = `query($id: ID!) { upload(id: $id) { id offset status partSize partCount missingParts(first: 1000) } }`;
const LIMITS = `{ serverLimits { parallelParts maxPartsAhead } }`;

function partOf(bytes: Buffer, n: number, partSize = PART): Buffer {
  return bytes.subarray((n - 1) * partSize, Math.min(n * partSize, bytes.length));
}

async function startParted(client: GraphQLClient, size: number, partSize = PART): Promise<{ id: string; partCount: number }> {
  return expectOk(await client.request(START, { input: { filename: 'parts.bin', totalSize: size, partSize } })).startUpload;
}

async function state(client: GraphQLClient, id: string): Promise<{ offset: number; status: string; missingParts: number[]; partCount: number }> {
  return (await client.data(STATE, { id })).upload;
}

async function sendPart(client: GraphQLClient, id: string, bytes: Buffer, n: number, partSize = PART): Promise<any> {
  const part = partOf(bytes, n, partSize);
  return expectOk(await client.uploadPart(id, n, part, { chunkMd5: md5(part) })).uploadPart;
}

/**
 * Sends the parts in `order`, `atOnce` requests at a time, as a client does: a part refused with
 * UPLOAD_LOCKED (too far ahead while the server appends the earlier ones) is sent again later.
 */
async function sendParts(client: GraphQLClient, id: string, bytes: Buffer, order: number[], atOnce = 4, partSize = PART): Promise<void> {
  const queue = [...order];
  const send = async (n: number) => {
    const part = partOf(bytes, n, partSize);
    for (let attempt = 0; ; attempt++) {
      const result = await client.uploadPart(id, n, part, { chunkMd5: md5(part) });
      if (result.errors?.[0]?.extensions?.code !== 'UPLOAD_LOCKED' || attempt === 100) return expectOk(result);
      await sleep(50);
    }
  };
  await Promise.all(
    Array.from({ length: atOnce }, async () => {
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) await send(n);
    }),
  );
}

function shuffled(count: number): number[] {
  const numbers = Array.from({ length: count }, (_, i) => i + 1);
  for (let i = numbers.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [numbers[i], numbers[j]] = [numbers[j], numbers[i]];
  }
  return numbers;
}

async function spooled(server: TestServer, id?: string): Promise<string[]> {
  const root = path.join(server.dataDir, 'part-spool');
  return readdir(id ? path.join(root, id) : root).catch(() => []);
}

async function complete(client: GraphQLClient, id: string, bytes: Buffer): Promise<any> {
  return expectOk(await client.complete(id, md5(bytes))).completeUpload;
}

describe('parallel parts', () => {
  let server: TestServer;
  let client: GraphQLClient;

  before(async () => {
    server = await startServer({ UPLOAD_LOCK_TTL: '2' });
    client = await server.admin.newUser();
  });
  after(() => server?.close());

  it('are offered by serverLimits', async () => {
    assert.deepEqual((await client.data(LIMITS)).serverLimits, { parallelParts: true, maxPartsAhead: 32 });
  });

  it('arrive in any order, four at once, and complete with the whole md5; the spool empties', async () => {
    const bytes = randomFile(20 * PART - 1000);
    const { id, partCount } = await startParted(client, bytes.length);
    assert.equal(partCount, 20);
    await sendParts(client, id, bytes, shuffled(partCount));
    assert.deepEqual((await state(client, id)).missingParts, [], 'every part is stored once its answer has come');
    await eventually(async () => assert.equal((await state(client, id)).offset, bytes.length, 'every part merged into the prefix'));
    const file = await complete(client, id, bytes);
    assert.equal(file.size, bytes.length);
    assert.equal(file.md5, md5(bytes));
    await verifyDownload(client, file.id, bytes);
    assert.deepEqual(await spooled(server, id), [], 'no spooled part is left');
  });

  it('count only the contiguous prefix in offset; missingParts lists the rest', async () => {
    const bytes = randomFile(5 * PART);
    const { id } = await startParted(client, bytes.length);
    const offsetBecomes = (offset: number, what: string) => eventually(async () => assert.equal((await state(client, id)).offset, offset, what));
    assert.equal((await sendPart(client, id, bytes, 2)).offset, 0, 'part 2 waits for part 1');
    await sendPart(client, id, bytes, 4);
    assert.deepEqual((await state(client, id)).missingParts, [1, 3, 5]);
    await sendPart(client, id, bytes, 1);
    await offsetBecomes(2 * PART, 'part 1 brings part 2 with it');
    assert.equal((await state(client, id)).offset, 2 * PART, 'and no further: part 3 is missing');
    const incomplete = expectCode(await client.complete(id, md5(bytes)), 'UPLOAD_INCOMPLETE');
    assert.deepEqual(incomplete.extensions?.missingParts, [3, 5]);
    await sendPart(client, id, bytes, 5);
    await sendPart(client, id, bytes, 3);
    await offsetBecomes(5 * PART, 'every part merged');
    assert.equal((await complete(client, id, bytes)).md5, md5(bytes));
  });

  it('take a stored part again only unchanged, before and after it joined the prefix', async () => {
    const bytes = randomFile(3 * PART);
    const { id } = await startParted(client, bytes.length);
    await sendPart(client, id, bytes, 2);
    assert.equal((await sendPart(client, id, bytes, 2)).offset, 0, 'the same bytes again: accepted');
    const changed = Buffer.from(partOf(bytes, 2));
    changed[100] ^= 0xff;
    expectCode(await client.uploadPart(id, 2, changed), 'BAD_USER_INPUT', 'part 2 with other bytes');
    await sendPart(client, id, bytes, 1);
    const changedFirst = Buffer.from(partOf(bytes, 1));
    changedFirst[0] ^= 0xff;
    expectCode(await client.uploadPart(id, 1, changedFirst), 'BAD_USER_INPUT', 'part 1 with other bytes, after the merge');
    await sendPart(client, id, bytes, 1);
    await sendPart(client, id, bytes, 3);
    assert.equal((await complete(client, id, bytes)).md5, md5(bytes), 'the first bytes were kept');
  });

  it('compare a part sent without chunkMd5 with its spooled bytes when it comes again', async () => {
    const bytes = randomFile(3 * PART);
    const { id } = await startParted(client, bytes.length);
    expectOk(await client.uploadPart(id, 3, partOf(bytes, 3)));
    expectOk(await client.uploadPart(id, 3, partOf(bytes, 3)));
    const changed = Buffer.from(partOf(bytes, 3));
    changed[PART - 1] ^= 0x01;
    expectCode(await client.uploadPart(id, 3, changed), 'BAD_USER_INPUT', 'part 3 with one bit changed');
    await sendParts(client, id, bytes, [1, 2]);
    assert.equal((await complete(client, id, bytes)).md5, md5(bytes));
  });

  it('refuse bad parts with the codes of the contract, and keep what is stored', async () => {
    const bytes = randomFile(3 * PART + 10);
    const { id } = await startParted(client, bytes.length);
    await sendPart(client, id, bytes, 1);
    expectCode(await client.uploadPart(id, 2, partOf(bytes, 2).subarray(1)), 'BAD_USER_INPUT', 'a part one byte short');
    expectCode(await client.uploadPart(id, 2, Buffer.concat([partOf(bytes, 2), Buffer.from('x')])), 'BAD_USER_INPUT', 'a part one byte long');
    expectCode(await client.uploadPart(id, 4, Buffer.concat([partOf(bytes, 4), Buffer.from('x')])), 'BAD_USER_INPUT', 'the last part too long');
    expectCode(await client.uploadPart(id, 5, Buffer.from('x')), 'BAD_USER_INPUT', 'a part past partCount');
    expectCode(await client.uploadPart(id, 0, Buffer.from('x')), 'BAD_USER_INPUT', 'part 0');
    expectCode(await client.uploadPart(id, 3, partOf(bytes, 3), { chunkMd5: md5(Buffer.from('other')) }), 'CHECKSUM_MISMATCH', 'a damaged part');
    expectCode(await client.uploadChunk(id, PART, partOf(bytes, 2)), 'BAD_USER_INPUT', 'uploadChunk on an upload in parts');
    expectCode(await client.uploadPart('00000000-0000-4000-8000-000000000000', 1, Buffer.from('x')), 'NOT_FOUND');
    const other = await server.admin.newUser();
    expectCode(await other.uploadPart(id, 2, partOf(bytes, 2)), 'NOT_FOUND', "another user's upload");
    const plain = await client.start('plain.bin', 10);
    expectCode(await client.uploadPart(plain.id, 1, Buffer.alloc(10)), 'BAD_USER_INPUT', 'uploadPart on an upload not in parts');
    assert.deepEqual((await state(client, id)).missingParts, [2, 3, 4]);
    await sendParts(client, id, bytes, [4, 3, 2]);
    assert.equal((await complete(client, id, bytes)).md5, md5(bytes));
    expectCode(await client.uploadPart(id, 1, partOf(bytes, 1)), 'UPLOAD_NOT_ACTIVE', 'a part after completion');
  });

  it('refuse a part too far ahead of the first missing one (the spool is bounded)', async () => {
    const partSize = 1024;
    const bytes = randomFile(40 * partSize);
    const { id } = await startParted(client, bytes.length, partSize);
    const ahead = expectCode(await client.uploadPart(id, 34, partOf(bytes, 34, partSize)), 'UPLOAD_LOCKED', 'part 34 before part 1');
    assert.match(ahead.message, /part 1\b/);
    await sendPart(client, id, bytes, 33, partSize);
    await sendPart(client, id, bytes, 1, partSize);
    // Counted from the offset: once part 1 is appended to the upload, part 34 is in reach.
    await eventually(async () => assert.equal((await state(client, id)).offset, partSize));
    await sendPart(client, id, bytes, 34, partSize);
    // In order, four at once: never more than a few parts ahead.
    await sendParts(client, id, bytes, Array.from({ length: 40 }, (_, i) => i + 1).filter((n) => ![1, 33, 34].includes(n)), 4, partSize);
    assert.equal((await complete(client, id, bytes)).md5, md5(bytes));
  });

  it('lock each part on its own: the same part twice at once is UPLOAD_LOCKED, other parts go on', async () => {
    const bytes = randomFile(3 * PART);
    const { id } = await startParted(client, bytes.length);
    const slow = openPartRequest(client, id, 2);
    await slow.send(partOf(bytes, 2).subarray(0, 1000));
    await sleep(300);
    expectCode(await client.uploadPart(id, 2, partOf(bytes, 2)), 'UPLOAD_LOCKED', 'part 2 while it is being sent');
    await sendPart(client, id, bytes, 3);
    await sendPart(client, id, bytes, 1);
    await slow.send(partOf(bytes, 2).subarray(1000));
    expectOk(await slow.finish());
    assert.equal((await complete(client, id, bytes)).md5, md5(bytes));
  });

  it('release the lease of a part whose client vanished mid-body, so a retry can send it', async () => {
    const bytes = randomFile(2 * PART);
    const { id } = await startParted(client, bytes.length);
    const leased = async () => (await server.sql(`select count(*)::int as n from upload_parts where upload_id = ? and lease_token is not null and lease_expires_at > now()`, [id]))[0].n;
    for (const sent of [1000, PART - 10]) {
      const cut = openPartRequest(client, id, 1);
      await cut.send(partOf(bytes, 1).subarray(0, sent));
      await eventually(async () => assert.equal(await leased(), 1));
      cut.abort();
      await eventually(async () => assert.equal(await leased(), 0, `released after a cut at ${sent} bytes`), 3000);
    }
    await sendParts(client, id, bytes, [2, 1]);
    assert.equal((await complete(client, id, bytes)).md5, md5(bytes));
  });

  it('refuse a part whose upload was aborted while it was being sent, and keep none of it', async () => {
    const bytes = randomFile(2 * PART);
    const { id } = await startParted(client, bytes.length);
    const slow = openPartRequest(client, id, 1);
    await slow.send(partOf(bytes, 1).subarray(0, 1000));
    await eventually(async () => assert.equal((await server.sql(`select count(*)::int as n from upload_parts where upload_id = ? and lease_token is not null`, [id]))[0].n, 1));
    expectOk(await client.abort(id));
    await slow.send(partOf(bytes, 1).subarray(1000));
    expectCode(await slow.finish(), 'UPLOAD_NOT_ACTIVE');
    await eventually(async () => assert.deepEqual(await spooled(server, id), []));
  });

  it('fence off a writer whose part lease ran out: its late bytes never count', async () => {
    const bytes = randomFile(2 * PART);
    const { id } = await startParted(client, bytes.length);
    const stale = openPartRequest(client, id, 1);
    await stale.send(Buffer.alloc(1000, 0xee));
    await eventually(async () => assert.equal((await server.sql(`select count(*)::int as n from upload_parts where upload_id = ? and lease_token is not null`, [id]))[0].n, 1));
    // As if its process had frozen past the lease: a retry takes the part over.
    await server.sql(`update upload_parts set lease_expires_at = now() - interval '1 second' where upload_id = ? and part_number = 1`, [id]);
    expectOk(await client.uploadPart(id, 1, partOf(bytes, 1)));
    // The stale writer sends the rest of its (other) bytes before it notices.
    await stale.send(Buffer.alloc(PART - 1000, 0xee)).catch(() => {});
    const answer = await stale.finish().catch(() => undefined);
    if (answer) expectCode(answer, 'UPLOAD_LOCKED', 'the stale writer');
    await sendPart(client, id, bytes, 2);
    const file = await complete(client, id, bytes);
    await verifyDownload(client, file.id, bytes);
  });

  it('survive a restart: stored parts stay, and the upload completes after it', async () => {
    const bytes = randomFile(6 * PART);
    const { id } = await startParted(client, bytes.length);
    await sendParts(client, id, bytes, [2, 3, 5, 6]);
    await server.restart();
    assert.deepEqual((await state(client, id)).missingParts, [1, 4]);
    await sendParts(client, id, bytes, [4, 1]);
    assert.equal((await complete(client, id, bytes)).md5, md5(bytes));
  });

  it('abort drops the spooled parts; the cleanup sweep drops those of a vanished upload', async () => {
    const bytes = randomFile(3 * PART);
    const first = await startParted(client, bytes.length);
    await sendPart(client, first.id, bytes, 2);
    assert.equal((await spooled(server, first.id)).length, 1);
    expectOk(await client.abort(first.id));
    await eventually(async () => assert.equal((await spooled(server)).includes(first.id), false));
    const second = await startParted(client, bytes.length);
    await sendPart(client, second.id, bytes, 3);
    await server.sql(`update chunked_uploads set status = 'ABORTED' where id = ?`, [second.id]);
    await server.app.services.cleanup.run();
    assert.equal((await spooled(server)).includes(second.id), false);
  });
});

describe('parallel parts, merged in segments', () => {
  let server: TestServer;
  let client: GraphQLClient;
  // Parts of 3 KiB merged in segments of 8 KiB (the largest chunk): commits fall inside parts.
  before(async () => {
    server = await startServer({ MAX_CHUNK_SIZE: String(8 * KiB) });
    client = await server.admin.newUser();
  });
  after(() => server?.close());

  it('forget a part lost from the spool, ask for it again, and resume the merge inside a part', async () => {
    const partSize = 3 * KiB;
    const bytes = randomFile(5 * partSize);
    const { id } = await startParted(client, bytes.length, partSize);
    await sendParts(client, id, bytes, [2, 3, 4, 5], 1, partSize);
    const lost = (await spooled(server, id)).find((name) => name.startsWith('4.'))!;
    await rm(path.join(server.dataDir, 'part-spool', id, lost));
    // The first segment commits 8 KiB, inside part 3; the next fails at part 4, which is
    // forgotten, and the merge starts again 2 KiB into part 3's spool file.
    await sendPart(client, id, bytes, 1, partSize);
    await eventually(async () => {
      const { offset, missingParts } = await state(client, id);
      assert.deepEqual({ offset, missingParts }, { offset: 3 * partSize, missingParts: [4] }, 'parts 1 to 3 merged; the lost part is missing again');
    });
    await sendPart(client, id, bytes, 4, partSize);
    await eventually(async () => assert.equal((await state(client, id)).offset, bytes.length));
    assert.equal((await complete(client, id, bytes)).md5, md5(bytes));
  });
});

describe('parallel parts on S3', { skip: S3_SKIP }, () => {
  it('go to the object store in order through the spool', async () => {
    const server = await startServer({ ...s3Env(), S3_PART_SIZE: String(5 * 1024 * KiB) });
    try {
      const client = await server.admin.newUser();
      const partSize = 3 * 1024 * KiB;
      const bytes = randomFile(4 * partSize + 123);
      const { id, partCount } = await startParted(client, bytes.length, partSize);
      await sendParts(client, id, bytes, shuffled(partCount), 3, partSize);
      const file = await complete(client, id, bytes);
      await verifyDownload(client, file.id, bytes);
    } finally {
      await server.close();
    }
  });
});

describe('parallel parts across instances', { skip: NEEDS_POSTGRES }, () => {
  const fixture = new ProcessFixture();

  it('complete when the parts go to two servers at once', async () => {
    const database = await fixture.database();
    const shared = await fixture.tempDir('parts-shared');
    const [a, b] = [await fixture.instance({}, shared, database), await fixture.instance({}, shared, database)];
    const bytes = randomFile(12 * PART);
    const { id } = await startParted(a.admin, bytes.length);
    const order = shuffled(12);
    await Promise.all([
      sendParts(a.admin, id, bytes, order.filter((_, i) => i % 2 === 0), 2),
      sendParts(b.admin, id, bytes, order.filter((_, i) => i % 2 === 1), 2),
    ]);
    assert.equal((await complete(b.admin, id, bytes)).md5, md5(bytes));
  });
});
