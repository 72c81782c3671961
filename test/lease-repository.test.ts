import 'reflect-metadata';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openDatabase, type Database } from '../src/db/orm';
import { User } from '../src/entities';
import { ChunkedUpload, UploadStatus } from '../src/uploads/chunked-upload.entity';
import { LeaseRepository } from '../src/uploads/lease.repository';
import { createTestDatabase, databaseKind, type TestDatabase } from './helpers/database';
import { sleep } from './helpers/timing';

/** Short enough to watch a lease run out; make_interval takes fractional seconds. */
const SHORT_TTL = 0.3;

describe(`lease repository (${databaseKind} database)`, () => {
  let dataDir: string;
  let testDb: TestDatabase;
  let db: Database;
  let owner: User;
  let leases: LeaseRepository;
  let shortLeases: LeaseRepository;

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'leases-test-'));
    testDb = await createTestDatabase();
    db = await openDatabase({ databaseUrl: testDb.url, dataDir, log: () => {} });
    const em = db.orm.em.fork();
    owner = em.create(User, { username: `owner-${Date.now()}`, passwordHash: 'x' });
    await em.flush();
    leases = new LeaseRepository(db.orm, 30, 3600);
    shortLeases = new LeaseRepository(db.orm, SHORT_TTL, 3600);
  });

  after(async () => {
    await db?.close();
    await testDb?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  /** A fresh upload of `totalSize` bytes, `offset` of them stored, expiring in an hour unless told. */
  async function newUpload(fields: { offset?: number; expiresInMs?: number; owner?: User } = {}): Promise<string> {
    const em = db.orm.em.fork();
    const upload = em.create(ChunkedUpload, {
      owner: fields.owner ?? owner,
      filename: 'f.bin',
      totalSize: 1000,
      offset: fields.offset ?? 0,
      md5State: Buffer.from([1, 2, 3]),
      expiresAt: new Date(Date.now() + (fields.expiresInMs ?? 3600_000)),
    });
    await em.flush();
    return upload.id;
  }

  async function reload(id: string): Promise<ChunkedUpload> {
    return db.orm.em.fork().findOneOrFail(ChunkedUpload, id, { populate: ['md5State'] });
  }

  it('gives one writer at a time the lease, each claim a higher generation', async () => {
    const id = await newUpload();
    const first = await leases.claim(id, owner.id);
    assert.ok(first);
    assert.equal(first.lease.generation, 1);
    assert.equal(first.lease.tookOver, false);
    assert.equal(first.upload.id, id);
    assert.equal(await leases.claim(id, owner.id), undefined, 'refused while the lease is held');
    assert.equal(await leases.isHeld(id), true);

    await leases.release(first.lease);
    assert.equal(await leases.isHeld(id), false);
    const second = await leases.claim(id, owner.id);
    assert.ok(second);
    assert.equal(second.lease.generation, 2);
    assert.equal(second.lease.tookOver, false, 'the first lease was released, not taken over');
  });

  it('refuses a claim at another offset, for another owner, on an expired or finished upload', async () => {
    const id = await newUpload({ offset: 10 });
    assert.equal(await leases.claim(id, owner.id, 0), undefined);
    const em = db.orm.em.fork();
    const stranger = em.create(User, { username: `stranger-${Date.now()}`, passwordHash: 'x' });
    await em.flush();
    assert.equal(await leases.claim(id, stranger.id, 10), undefined);
    const claimed = await leases.claim(id, owner.id, 10);
    assert.ok(claimed);
    assert.equal(claimed.upload.offset, 10);

    const expired = await newUpload({ expiresInMs: -1000 });
    assert.equal(await leases.claim(expired, owner.id), undefined);

    const aborted = await newUpload();
    const lease = (await leases.claim(aborted, owner.id))!.lease;
    assert.equal(await leases.abort(lease), true);
    assert.equal((await reload(aborted)).status, UploadStatus.ABORTED);
    assert.equal(await leases.claim(aborted, owner.id), undefined);
  });

  it('takes over a lease that ran out unreleased, and the old holder can no longer renew, save, commit or release', async () => {
    const id = await newUpload();
    const old = (await shortLeases.claim(id, owner.id, 0))!;
    await sleep(SHORT_TTL * 1000 + 200);
    const taker = await leases.claim(id, owner.id, 0);
    assert.ok(taker);
    assert.equal(taker.lease.tookOver, true);
    assert.equal(taker.lease.generation, old.lease.generation + 1);

    assert.equal(await shortLeases.renew(old.lease), 'lost');
    assert.equal(await shortLeases.saveStorageState(old.lease, { stale: true }), false);
    const stale = { offset: 0, bytesWritten: 5, md5State: new Uint8Array([9]), storageState: null };
    assert.equal(await shortLeases.commitChunk(old.lease, stale), undefined);
    await shortLeases.release(old.lease);
    assert.equal(await leases.isHeld(id), true, 'the old holder\'s release leaves the new lease alone');
    assert.equal((await reload(id)).offset, 0);
  });

  it('keeps a renewed lease past its first expiry', async () => {
    const id = await newUpload();
    const { lease } = (await shortLeases.claim(id, owner.id))!;
    for (let i = 0; i < 3; i++) {
      await sleep((SHORT_TTL * 1000) / 2);
      assert.equal(await shortLeases.renew(lease), 'held');
    }
    assert.equal(await leases.claim(id, owner.id), undefined, 'still held after more than its TTL');
  });

  it("passes a newer request's ask to release to the holder's next renewal, and a new claim clears it", async () => {
    const id = await newUpload();
    assert.equal(await leases.askToRelease(id, owner.id), false, 'nobody to ask while the lease is free');
    const { lease } = (await leases.claim(id, owner.id))!;
    const em = db.orm.em.fork();
    const stranger = em.create(User, { username: `bystander-${Date.now()}`, passwordHash: 'x' });
    await em.flush();
    assert.equal(await leases.askToRelease(id, stranger.id), false, "another user cannot disturb the owner's writer");
    assert.equal(await leases.renew(lease), 'held');
    assert.equal(await leases.askToRelease(id, owner.id), true);
    assert.equal(await leases.renew(lease), 'asked to release');
    assert.equal(await leases.renew(lease), 'asked to release', 'the ask stands until the lease changes hands');
    await leases.release(lease);
    const next = (await leases.claim(id, owner.id))!;
    assert.equal(await leases.renew(next.lease), 'held');
  });

  it('commits offset, md5 state and storage state together and releases the lease', async () => {
    const id = await newUpload({ offset: 100 });
    const { lease } = (await leases.claim(id, owner.id, 100))!;
    assert.equal(await leases.saveStorageState(lease, { fencedBy: lease.generation }), true);
    const committed = await leases.commitChunk(lease, { offset: 100, bytesWritten: 50, md5State: new Uint8Array([7, 7]), storageState: { parts: 1 } });
    assert.ok(committed);
    assert.equal(committed.offset, 150);
    const row = await reload(id);
    assert.equal(row.offset, 150);
    assert.deepEqual([...row.md5State], [7, 7]);
    assert.deepEqual(row.storageState, { parts: 1 });
    assert.equal(await leases.isHeld(id), false);
    assert.equal(await leases.commitChunk(lease, { offset: 150, bytesWritten: 1, md5State: new Uint8Array(), storageState: null }), undefined, 'a released lease commits nothing');
  });

  it('completes only inside the holder\'s transaction', async () => {
    const id = await newUpload();
    const { lease } = (await leases.claim(id, owner.id))!;
    await assert.rejects(
      db.orm.em.fork().transactional(async (em) => {
        assert.equal(await leases.complete(em, lease), true);
        throw new Error('roll back');
      }),
      /roll back/,
    );
    assert.equal((await reload(id)).status, UploadStatus.UPLOADING, 'rolled back with its transaction');
    const done = await db.orm.em.fork().transactional((em) => leases.complete(em, lease));
    assert.equal(done, true);
    assert.equal((await reload(id)).status, UploadStatus.COMPLETE);
  });

  it('expires only abandoned uploads: past their expiry and not held by a live writer', async () => {
    const abandoned = await newUpload({ expiresInMs: -1000 });
    const fresh = await newUpload();
    const held = await newUpload({ expiresInMs: 400 });
    assert.ok(await leases.claim(held, owner.id));
    await sleep(500);
    const expired = (await leases.expireAbandoned()).map((u) => u.id);
    assert.ok(expired.includes(abandoned), 'the abandoned upload is expired');
    assert.ok(!expired.includes(fresh), 'an upload within its lifetime is kept');
    assert.ok(!expired.includes(held), 'an upload a live writer holds is kept');
    assert.equal((await reload(abandoned)).status, UploadStatus.EXPIRED);
    assert.equal((await reload(held)).status, UploadStatus.UPLOADING);
  });

  it('lets exactly one of many simultaneous claims win', async () => {
    const id = await newUpload();
    const claims = await Promise.all(Array.from({ length: 12 }, () => leases.claim(id, owner.id, 0)));
    const winners = claims.filter((c) => c !== undefined);
    assert.equal(winners.length, 1);
    assert.equal(winners[0]!.lease.generation, 1);
  });
});
