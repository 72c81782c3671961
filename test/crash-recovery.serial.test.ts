/**
 * The server process SIGKILLed mid-chunk (early in the body; with the whole body but not its
 * end; right after the last byte, before the answer) and during completeUpload; a new process
 * on the same DATA_DIR and database resumes from upload(id).offset and completes, the download
 * matches the source md5, and rows and stored bytes agree (no File row without its bytes, no
 * bytes that no row vouches for). Real PostgreSQL when TEST_DATABASE_URL is set, else the
 * embedded PGlite under DATA_DIR.
 *
 * *.serial.test: it kills server processes at chosen instants, so the runner gives it the
 * machine to itself (timing matters).
 */
import assert from 'node:assert/strict';
import { statSync, watch } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { md5, randomFile } from './helpers/client';
import { assertPartPrefix, assertRowsMatchBytes, listSizes, readRows } from './helpers/consistency';
import { databaseKind } from './helpers/database';
import { ProcessFixture, type ServerInstance } from './helpers/process';
import { openChunkRequest, openHeldChunk, sendInPieces } from './helpers/raw-chunk';
import { eventually, withTimeout } from './helpers/timing';
import { assertLeaseHeld, completeAndVerify, resumeUpload, sendChunks } from './helpers/upload';

const MiB = 1024 * 1024;
const LOCK_TTL = 2;
/** How long a dead writer's lease may keep an upload locked after a restart. */
const DEAD_LEASE_MS = LOCK_TTL * 1000 + 8000;
const CHUNK = 2 * MiB;

/**
 * SIGKILLs the server the instant `shouldKill` holds for a change inotify reports under
 * `watched` (it gets the changed name); resolves with that name once the process is gone.
 * Call it before starting the requests it should interrupt.
 */
async function killOnChange(instance: ServerInstance, watched: string, shouldKill: (name: string) => boolean, what: string): Promise<string> {
  const watcher = watch(watched);
  let killedOn: string | undefined;
  const changed = new Promise<string>((resolve) => {
    watcher.on('change', (_type, name) => {
      if (killedOn !== undefined || !shouldKill(String(name))) return;
      killedOn = String(name);
      instance.server.child.kill('SIGKILL');
      resolve(killedOn);
    });
  });
  try {
    return await withTimeout(changed, 10_000, what);
  } finally {
    watcher.close();
    await instance.kill();
  }
}

describe(`SIGKILL mid-chunk and mid-completion, then a new process on the same DATA_DIR and database (${databaseKind})`, () => {
  const fixture = new ProcessFixture();
  let node: ServerInstance;

  before(async () => {
    node = await fixture.instance({ UPLOAD_LOCK_TTL: String(LOCK_TTL), BODY_TIMEOUT: '30' });
  });

  /** An upload of `size` random bytes with its first CHUNK stored, on a running process. */
  async function uploadWithFirstChunk(name: string, size: number) {
    if (!node.alive()) await node.start(); // every test leaves it running; this one does not rely on that
    const bytes = randomFile(size);
    const { id } = await node.admin.start(name, bytes.length);
    await sendChunks(node.admin, id, bytes, 0, CHUNK, CHUNK);
    return { id, bytes };
  }

  it('killed early in a chunk body: resumes from the stored offset once the dead lease runs out', { timeout: 60_000 }, async (t) => {
    const { id, bytes } = await uploadWithFirstChunk('killed-early.bin', 2 * CHUNK + 12_345);
    const admin = node.admin;
    const request = await openHeldChunk(admin, id, CHUNK, randomFile(64 * 1024)); // junk: none of it may survive
    await node.kill();
    request.abort();

    const restartMs = await node.restart();
    assert.equal((await admin.getUpload(id)).offset, CHUNK, 'the cut-off chunk counted nothing');
    await assertPartPrefix(node, id, bytes, CHUNK);
    await assertRowsMatchBytes(node, false);

    const resumed = await resumeUpload(admin, id, bytes, CHUNK, DEAD_LEASE_MS);
    assert.equal(resumed.from, CHUNK);
    t.diagnostic(`restart took ${restartMs} ms; resumed ${resumed.waited} ms later after ${resumed.seen.length} UPLOAD_LOCKED answer(s)`);
    await sendChunks(admin, id, bytes, 2 * CHUNK, bytes.length, CHUNK);
    await completeAndVerify(admin, id, bytes);
    await assertRowsMatchBytes(node, false);
  });

  it('killed with the whole chunk body received but not its end: the bytes on disk do not count', { timeout: 60_000 }, async (t) => {
    const { id, bytes } = await uploadWithFirstChunk('killed-unfinished.bin', 2 * CHUNK + 12_345);
    const admin = node.admin;
    const request = openChunkRequest(admin, id, CHUNK);
    // A whole chunk of junk, but never the closing boundary: the server writes most of it.
    await sendInPieces(request, randomFile(CHUNK));
    await eventually(async () => {
      const size = (await stat(node.partPath(id))).size;
      assert.ok(size >= CHUNK + MiB, `partial bytes reach the disk (${size})`);
    }, 10_000);
    await assertLeaseHeld(admin, id);
    await node.kill();
    request.abort();

    await node.restart();
    assert.equal((await admin.getUpload(id)).offset, CHUNK, 'the unfinished chunk counted nothing');
    const onDisk = await assertPartPrefix(node, id, bytes, CHUNK);
    assert.ok(onDisk > CHUNK, 'the partial junk was on disk when the process died (this scenario really happened)');
    t.diagnostic(`${onDisk - CHUNK} bytes of the unfinished chunk were on disk at the kill`);
    await assertRowsMatchBytes(node, false);

    const resumed = await resumeUpload(admin, id, bytes, CHUNK, DEAD_LEASE_MS);
    assert.equal(resumed.from, CHUNK);
    await sendChunks(admin, id, bytes, 2 * CHUNK, bytes.length, CHUNK);
    await completeAndVerify(admin, id, bytes);
  });

  it('killed right after the last byte of a chunk, before the answer: the offset is what is on disk', { timeout: 60_000 }, async (t) => {
    const { id, bytes } = await uploadWithFirstChunk('killed-after-last-byte.bin', 2 * CHUNK + 12_345);
    const admin = node.admin;
    const request = openChunkRequest(admin, id, CHUNK);
    await sendInPieces(request, bytes.subarray(CHUNK, 2 * CHUNK));
    // The process dies the instant the chunk's last byte is in the part file (inotify), while
    // the server flushes it and commits the offset.
    const partPath = node.partPath(id);
    const killed = killOnChange(node, partPath, () => statSync(partPath, { throwIfNoEntry: false })?.size === 2 * CHUNK, 'the chunk never reached the part file');
    const answer = request.finish().then(
      (r) => `answered ${JSON.stringify(r.errors?.map((e) => e.extensions?.code) ?? r.data?.uploadChunk?.offset)}`,
      () => 'no answer',
    );
    await killed;
    const seen = await answer;

    await node.restart();
    const after = await admin.getUpload(id);
    t.diagnostic(`client: ${seen}; stored offset after restart: ${after.offset} (${after.offset === CHUNK ? 'not committed' : 'committed'})`);
    // Either is right: the kill raced the commit.
    assert.ok(after.offset === CHUNK || after.offset === 2 * CHUNK, `offset ${after.offset} is a chunk boundary`);
    await assertPartPrefix(node, id, bytes, after.offset);
    await assertRowsMatchBytes(node, false);
    if (after.offset === CHUNK) await resumeUpload(admin, id, bytes, CHUNK, DEAD_LEASE_MS);
    await eventually(async () => {
      const upload = await admin.getUpload(id);
      await sendChunks(admin, id, bytes, upload.offset, bytes.length, CHUNK);
    }, DEAD_LEASE_MS);
    await completeAndVerify(admin, id, bytes);
  });

  it('killed during completeUpload: no row without bytes, no bytes without a row; completing again finishes the job', { timeout: 90_000 }, async (t) => {
    const main = await uploadWithFirstChunk('killed-complete.bin', 2 * CHUNK + 12_345);
    const admin = node.admin;
    await sendChunks(admin, main.id, main.bytes, CHUNK, main.bytes.length, CHUNK);
    // Six more uploads, all completed at once; the process dies the instant the first bytes
    // land in DATA_DIR/files (inotify), i.e. between a completion's rename and its commit,
    // with the other completions at other steps (waiting, lease taken, File row inserted).
    const others = [100_000, 300_000, 600_000, 1_000_000, 1_500_000, 3 * MiB + 1].map((n) => randomFile(n));
    const all = [main];
    for (const [i, other] of others.entries()) {
      const id = (await admin.start(`killed-complete-${i}.bin`, other.length)).id;
      await sendChunks(admin, id, other, 0, other.length, CHUNK);
      all.push({ id, bytes: other });
    }
    const ids = new Set(all.map((u) => u.id));
    const killed = killOnChange(node, path.join(node.dataDir, 'files'), (name) => ids.has(name), 'no completion moved its bytes');
    const answers = all.map(({ id, bytes: b }) =>
      admin.complete(id, md5(b)).then(
        (r) => (r.errors ? String(r.errors[0].extensions?.code) : 'File'),
        () => 'no answer',
      ),
    );
    const killedOn = await killed;
    const seen = await Promise.all(answers);

    await node.restart();
    const pending = await assertRowsMatchBytes(node, true);
    const rows = await readRows(node);
    const states = all.map(({ id }) => (rows.files.has(id) ? 'committed' : pending.includes(id) ? 'moved, not committed' : 'not moved'));
    t.diagnostic(`killed when ${all.findIndex((u) => u.id === killedOn)} moved its bytes; clients saw: ${seen.join(', ')}; after restart: ${states.join(', ')}`);
    for (const [i, answer] of seen.entries()) {
      if (answer === 'File') assert.equal(states[i], 'committed', 'a completion the client saw succeed survived the crash');
    }

    const files = [];
    for (const { id, bytes: b } of all) files.push(await completeAndVerify(admin, id, b, DEAD_LEASE_MS));
    // Idempotent: a retry after the crash returns the same File.
    for (const [i, { id, bytes: b }] of all.entries()) {
      const again = await admin.complete(id, md5(b));
      assert.equal(again.errors, undefined, JSON.stringify(again.errors));
      assert.equal(again.data.completeUpload.id, files[i].id);
      assert.equal((await admin.getUpload(id)).status, 'COMPLETE');
    }
    assert.deepEqual(await assertRowsMatchBytes(node, false), [], 'every completion is whole: no bytes wait for a row');
    const partsLeft = [...(await listSizes(path.join(node.dataDir, 'uploads'))).keys()].filter((name) => ids.has(name.replace(/\.part$/, '')));
    assert.deepEqual(partsLeft, [], 'no partial bytes of these uploads are left');
  });
});
