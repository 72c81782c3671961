/**
 * Two server processes sharing one database and one DATA_DIR (PostgreSQL only): chunks strictly
 * alternating, completion on the other process; twenty clients racing one offset across both;
 * and a writer frozen (SIGSTOP) past its lease while the other process takes the upload over:
 * it must not overwrite the bytes acknowledged meanwhile. Every upload is completed and its
 * download compared with the source's md5.
 *
 * *.serial.test: it freezes a server process with SIGSTOP, so the runner gives it the machine
 * to itself. Needs TEST_DATABASE_URL (skipped on the embedded database).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { before, describe, it } from 'node:test';
import { md5, randomFile } from './helpers/client';
import { assertRowsMatchBytes } from './helpers/consistency';
import { NEEDS_POSTGRES } from './helpers/database';
import { ProcessFixture, type ServerInstance } from './helpers/process';
import { openChunkRequest, sendInPieces } from './helpers/raw-chunk';
import { ADMIN } from './helpers/server';
import { sleep, withTimeout } from './helpers/timing';
import { assertLeaseHeld, completeAndVerify, raceChunks, resumeUpload, sendChunks, verifyDownload } from './helpers/upload';

const MiB = 1024 * 1024;

/** How many bytes of `x` and `y` differ (a length difference counts in full). */
function countDiffering(x: Buffer, y: Buffer): number {
  let n = 0;
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) n++;
  return n + Math.abs(x.length - y.length);
}

describe('two server processes sharing one database and one DATA_DIR', { skip: NEEDS_POSTGRES }, () => {
  const LOCK_TTL = 2;
  const fixture = new ProcessFixture();
  let nodes: ServerInstance[];

  before(async () => {
    const dataDir = await fixture.tempDir('multi-process-shared');
    const database = await fixture.database();
    nodes = [];
    for (let i = 0; i < 2; i++) nodes.push(await fixture.instance({ UPLOAD_LOCK_TTL: String(LOCK_TTL) }, dataDir, database));
  });

  it('take the chunks of one upload strictly in turn; the other one completes it; both serve the same bytes', { timeout: 60_000 }, async () => {
    const [a, b] = nodes.map((n) => n.admin);
    const chunk = 700 * 1024;
    const bytes = randomFile(9 * chunk + 333);
    const { id } = await a.start('alternate.bin', bytes.length);
    let last = 0;
    for (let offset = 0, i = 0; offset < bytes.length; offset += chunk, i++) {
      const client = i % 2 === 0 ? a : b;
      const end = Math.min(offset + chunk, bytes.length);
      const result = await client.uploadChunk(id, offset, bytes.subarray(offset, end));
      assert.equal(result.errors, undefined, `chunk ${i} on instance ${i % 2}: ${JSON.stringify(result.errors)}`);
      assert.equal(result.data.uploadChunk.offset, end);
      // The other instance sees the new offset at once (the row, not a cache, is the truth).
      assert.equal((await (i % 2 === 0 ? b : a).getUpload(id)).offset, end);
      last = i % 2;
    }
    const completer = last === 0 ? b : a;
    const file = await completeAndVerify(completer, id, bytes);
    // The instance that took the last chunk answers the retried completion with the same File.
    const again = await (last === 0 ? a : b).complete(id, md5(bytes));
    assert.equal(again.errors, undefined, JSON.stringify(again.errors));
    assert.equal(again.data.completeUpload.id, file.id);
    await verifyDownload(a, file.id, bytes);
    await verifyDownload(b, file.id, bytes);
    await assertRowsMatchBytes(nodes[0], false);
  });

  it('20 clients racing one offset across both processes: exactly one wins', { timeout: 60_000 }, async (t) => {
    const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => nodes[i % 2].base.login(ADMIN.username, ADMIN.password)));
    const prefix = randomFile(64 * 1024);
    const size = 300_000;
    const { id } = await clients[0].start('race20-two-processes.bin', prefix.length + size);
    await sendChunks(clients[1], id, prefix, 0, prefix.length, prefix.length);
    const candidates = clients.map(() => randomFile(size));
    const { winner, codes } = await raceChunks(clients, id, prefix.length, candidates);
    t.diagnostic(`answers: ${codes}`);
    await completeAndVerify(clients[(winner + 1) % 20], id, Buffer.concat([prefix, candidates[winner]]));
  });

  it('a writer frozen past its lease (SIGSTOP) cannot overwrite the chunk the other process accepted meanwhile', { timeout: 60_000 }, async (t) => {
    const [a, b] = nodes;
    const chunk = 2 * MiB;
    const bytes = randomFile(2 * chunk);
    const junk = randomFile(chunk);
    const { id } = await a.admin.start('frozen-writer.bin', bytes.length);

    // Writer 1, on process A: not quite one write batch (1 MiB) of junk, so it sits in A's memory.
    const w1 = openChunkRequest(a.admin, id, 0);
    const held = MiB - 16 * 1024;
    await sendInPieces(w1, junk.subarray(0, held));
    await sleep(300);
    await assertLeaseHeld(b.admin, id);
    const pid = a.server.child.pid!;
    let rest: Promise<unknown> = Promise.resolve();
    process.kill(pid, 'SIGSTOP'); // a GC pause, a VM suspended, a process swapped out: longer than the lease
    try {
      // The rest of writer 1's junk waits in the socket buffers meanwhile.
      rest = sendInPieces(w1, junk.subarray(held)).then(() => w1.finish()).catch(() => {});
      // Writer 2, on process B, takes over once the frozen writer's lease has run out.
      const resumed = await resumeUpload(b.admin, id, bytes, chunk, LOCK_TTL * 1000 + 8000);
      assert.equal(resumed.from, 0);
      t.diagnostic(`process B took the upload over after ${resumed.waited} ms (${resumed.seen.length} UPLOAD_LOCKED)`);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Writer 1 wakes up with data to write: it lost its lease and must not write any of it.
    const w1Outcome = await withTimeout(
      rest.then(() => w1.response).then(
        (answer) => `HTTP ${answer.status} ${JSON.stringify(answer.errors?.map((e) => e.extensions?.code) ?? answer.data)}`,
        (err: Error) => `connection closed (${err.message})`,
      ),
      15_000,
      'the woken writer never finished',
    );
    t.diagnostic(`the woken writer: ${w1Outcome}`);
    assert.doesNotMatch(w1Outcome, /"uploadChunk"/, 'the writer that lost its lease is not acknowledged');
    assert.equal((await b.admin.getUpload(id)).offset, chunk, 'the offset is writer 2\'s');
    // The bytes writer 2 was acknowledged for are still on disk, untouched.
    const part = await readFile(await a.currentPartPath(id));
    const corrupted = countDiffering(part.subarray(0, chunk), bytes.subarray(0, chunk));

    // Finish either way, to show what a client would get.
    await sendChunks(b.admin, id, bytes, chunk, bytes.length, chunk);
    const done = await a.admin.complete(id, md5(bytes));
    assert.equal(done.errors, undefined, `completeUpload: ${JSON.stringify(done.errors)}`);
    const served = md5((await a.admin.download(`/files/${done.data.completeUpload.id}/content`)).body);
    assert.equal(
      corrupted,
      0,
      `${corrupted} of the ${chunk} bytes of an acknowledged chunk were overwritten by the writer that had lost its lease; ` +
        `completeUpload still accepted md5 ${md5(bytes)} (File.md5 ${done.data.completeUpload.md5}) and the file serves bytes with md5 ${served}`,
    );
    assert.equal(served, md5(bytes), 'the stored file is the source');
  });
});
