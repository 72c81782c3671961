import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createMD5 } from 'hash-wasm';
import { Md5Pool, type Md5Session } from '../src/hashing/md5-pool';
import { md5 } from './helpers/client';

const KiB = 1024;

const feed = (session: Md5Session, bytes: Uint8Array) =>
  new Promise<void>((resolve, reject) => session.update(bytes, (err) => (err ? reject(err) : resolve())));

async function initialState(): Promise<Uint8Array> {
  return (await createMD5()).init().save();
}

async function digestOf(state: Uint8Array): Promise<string> {
  const hasher = await createMD5();
  hasher.load(state);
  return hasher.digest('hex');
}

/** Feeds `bytes` in pieces of random sizes (1 byte to 700 KiB: across slab boundaries). */
async function feedInPieces(session: Md5Session, bytes: Buffer): Promise<void> {
  for (let at = 0; at < bytes.length; ) {
    const size = Math.min(bytes.length - at, 1 + Math.floor(Math.random() * 700 * KiB));
    await feed(session, bytes.subarray(at, at + size));
    at += size;
  }
}

describe('md5 worker pool', () => {
  const pool = new Md5Pool(2);
  after(() => pool.close());

  it('continues an md5 across sessions exactly like one hasher over all the bytes', async () => {
    const file = randomBytes(5 * 1024 * KiB + 123);
    const cuts = [0, 1, 64 * KiB - 1, 1024 * KiB + 7, 3 * 1024 * KiB, file.length];
    let state = await initialState();
    for (let i = 0; i + 1 < cuts.length; i++) {
      const session = pool.open(state);
      await feedInPieces(session, file.subarray(cuts[i], cuts[i + 1]));
      state = await session.save();
    }
    assert.equal(await digestOf(state), md5(file));
  });

  it('keeps many interleaved sessions apart', async () => {
    const files = Array.from({ length: 6 }, (_, i) => randomBytes(600 * KiB + i * 1000));
    const start = await initialState();
    const sessions = files.map(() => pool.open(start));
    // Round-robin 10 KiB pieces of every file, so each worker sees the sessions interleaved.
    for (let at = 0; files.some((f) => at < f.length); at += 10 * KiB) {
      await Promise.all(files.map((f, i) => (at < f.length ? feed(sessions[i], f.subarray(at, at + 10 * KiB)) : undefined)));
    }
    const digests = await Promise.all(sessions.map(async (s) => digestOf(await s.save())));
    assert.deepEqual(
      digests,
      files.map((f) => md5(f)),
    );
  });

  it('holds a writer back while its slabs are at the worker, and lets it go on', async () => {
    const session = pool.open(await initialState());
    const big = randomBytes(6 * 1024 * KiB);
    let calledBack = false;
    const fed = new Promise<void>((resolve, reject) =>
      session.update(big, (err) => {
        calledBack = true;
        if (err) reject(err);
        else resolve();
      }),
    );
    // 6 MiB is more than a session may have at its worker: the callback did not run synchronously.
    assert.equal(calledBack, false);
    await fed;
    assert.equal(await digestOf(await session.save()), md5(big));
  });

  it('shares the slabs in flight among many sessions: each gets less, at least two', async () => {
    const local = new Md5Pool(1);
    try {
      const start = await initialState();
      const fourMiB = randomBytes(4 * 1024 * KiB); // four slabs
      const copiedAtOnce = (session: Md5Session) => {
        let calledBack = false;
        session.update(fourMiB, () => (calledBack = true));
        return calledBack;
      };
      const alone = local.open(start);
      assert.equal(copiedAtOnce(alone), true, 'one session may have four slabs in flight');
      const crowd = Array.from({ length: 15 }, () => local.open(start));
      const latecomer = local.open(start);
      assert.equal(copiedAtOnce(latecomer), false, 'with 17 sessions open, the third slab waits');
      // The sessions end (saved or discarded): the share grows back.
      await alone.save();
      for (const session of crowd) session.discard();
      const next = local.open(start);
      assert.equal(copiedAtOnce(next), true);
      next.discard();
      latecomer.discard();
    } finally {
      await local.close();
    }
  });

  it('saves a session that was given no bytes as the state it started from', async () => {
    const hasher = await createMD5();
    const state = hasher.init().update('continued').save();
    assert.equal(await digestOf(await pool.open(state).save()), md5(Buffer.from('continued')));
  });

  it('forgets a discarded session without disturbing the others', async () => {
    const keep = pool.open(await initialState());
    const drop = pool.open(await initialState());
    const bytes = randomBytes(300 * KiB);
    await feed(drop, bytes);
    await feed(keep, bytes);
    drop.discard();
    assert.equal(await digestOf(await keep.save()), md5(bytes));
  });

  it('keeps a process alive while a session is open, and lets it exit once all have ended', () => {
    // A process with nothing else to do: it must wait for the md5, then exit by itself.
    const script = `
      const { Md5Pool } = require(${JSON.stringify(path.resolve(__dirname, '../src/hashing/md5-pool.js'))});
      const { createMD5 } = require('hash-wasm');
      (async () => {
        const md5 = await createMD5();
        const session = new Md5Pool(1).open(md5.init().save());
        // Enough for the worker to be busy well after this thread has nothing left to run.
        session.update(Buffer.alloc(1536 * 1024, 'a'), () => session.save().then((state) => {
          md5.load(state);
          console.log(md5.digest('hex'));
        }));
      })();`;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000, cwd: path.resolve(__dirname, '..') });
    assert.equal(child.signal, null, 'the process exited by itself');
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout.trim(), md5(Buffer.alloc(1536 * 1024, 'a')));
  });

  it('fails the sessions of a worker that dies, and starts a new one for the next session', async () => {
    const local = new Md5Pool(1);
    try {
      const session = local.open(await initialState());
      await feed(session, randomBytes(10 * KiB));
      await local.close();
      await assert.rejects(session.save(), /md5 worker exited/);
      const next = local.open(await initialState());
      await feed(next, Buffer.from('abc'));
      assert.equal(await digestOf(await next.save()), '900150983cd24fb0d6963f7d28e17f72');
    } finally {
      await local.close();
    }
  });
});
