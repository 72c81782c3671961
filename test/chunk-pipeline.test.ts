import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import { createMD5 } from 'hash-wasm';
import { AppError } from '../src/errors';
import { Md5Pool } from '../src/hashing/md5-pool';
import { BodySegments, BodyWatch, ChunkInspector, LeaseClock, type ChunkRules } from '../src/uploads/chunk-pipeline';
import { randomFile } from './helpers/client';
import { sleep } from './helpers/timing';

const md5 = (bytes: Buffer) => createHash('md5').update(bytes).digest('hex');

function pieces(bytes: Buffer, size = 64 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
    })(),
  );
}

/** Collects what passes the inspector, as storage would receive it. */
function collector(): { sink: Writable; received: Buffer[] } {
  const received: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, callback) {
      received.push(chunk);
      callback();
    },
  });
  return { sink, received };
}

async function digestOf(state: Uint8Array): Promise<string> {
  const hasher = await createMD5();
  hasher.load(state);
  return hasher.digest('hex');
}

describe('chunk pipeline', () => {
  const pool = new Md5Pool(1);
  after(() => pool.close());

  async function rules(overrides: Partial<ChunkRules> = {}, md5StateBefore?: Uint8Array): Promise<ChunkRules> {
    const initial = md5StateBefore ?? (await createMD5()).init().save();
    return {
      limit: 1024 * 1024,
      totalSize: 10 * 1024 * 1024,
      offset: 0,
      md5: pool.open(initial),
      lease: new LeaseClock(1, 30_000, Date.now()),
      ...overrides,
    };
  }

  it('passes every byte through and continues the whole file\'s md5 from the state before the chunk', async () => {
    const before = randomFile(300_000);
    const chunk = randomFile(700_000);
    const hasher = await createMD5();
    hasher.init().update(before);
    const watch = new BodyWatch(pieces(chunk), 10_000);
    const inspector = ChunkInspector.inspect(watch, await rules({ offset: before.length }, hasher.save()));
    const { sink, received } = collector();
    await pipeline(inspector, sink);
    watch.stop();
    assert.equal(md5(Buffer.concat(received)), md5(chunk), 'storage receives the chunk unchanged');
    assert.equal(await digestOf(await inspector.md5State()), md5(Buffer.concat([before, chunk])));
  });

  it('refuses a chunk past its limit with PAYLOAD_TOO_LARGE, naming the bytes left', async () => {
    const watch = new BodyWatch(pieces(randomFile(200)), 10_000);
    const inspector = ChunkInspector.inspect(watch, await rules({ limit: 100, totalSize: 1100, offset: 1000 }));
    const { sink } = collector();
    await assert.rejects(pipeline(inspector, sink), (err: AppError) => {
      assert.equal(err.code, 'PAYLOAD_TOO_LARGE');
      assert.equal(err.message, 'The chunk runs past totalSize (1100 bytes): 100 bytes are left from offset 1000.');
      return true;
    });
    watch.stop();
  });

  it('refuses a chunk whose own md5 differs from chunkMd5, and accepts the right one', async () => {
    const chunk = randomFile(5000);
    for (const [expected, ok] of [
      [md5(chunk), true],
      ['0'.repeat(32), false],
    ] as const) {
      const watch = new BodyWatch(pieces(chunk, 1000), 10_000);
      const inspector = ChunkInspector.inspect(watch, await rules({ expectedChunkMd5: expected }));
      const written = pipeline(inspector, collector().sink);
      if (ok) await written;
      else await assert.rejects(written, (err: AppError) => err.code === 'CHECKSUM_MISMATCH');
      watch.stop();
    }
  });

  it('stops passing bytes once the lease clock has run out or the lease is lost', async () => {
    const lost = new LeaseClock(3, 30_000, Date.now());
    lost.lose();
    assert.throws(() => lost.assertHeld(), (err: AppError) => err.code === 'UPLOAD_LOCKED');
    const watch = new BodyWatch(pieces(randomFile(1000)), 10_000);
    const inspector = ChunkInspector.inspect(watch, await rules({ lease: lost }));
    const { sink, received } = collector();
    await assert.rejects(pipeline(inspector, sink), (err: AppError) => err.code === 'UPLOAD_LOCKED');
    assert.equal(received.length, 0, 'nothing reached storage');
    watch.stop();

    // A claim sent 30 s ago with a 30 s TTL: past the clock's safety margin.
    const stale = new LeaseClock(4, 30_000, Date.now() - 30_000);
    assert.equal(stale.expired, true);
    stale.renewedAt(Date.now());
    assert.equal(stale.expired, false, 'a renewal sent now makes it valid again');
  });

  it('tells an empty body from one with bytes without consuming either', async () => {
    assert.equal(await new BodyWatch(Readable.from([]), 10_000).endsBeforeFirstByte(), true);
    const body = pieces(Buffer.from('hello'));
    const watch = new BodyWatch(body, 10_000);
    assert.equal(await watch.endsBeforeFirstByte(), false);
    const rest: Buffer[] = [];
    for await (const piece of body) rest.push(piece as Buffer);
    watch.stop();
    assert.equal(Buffer.concat(rest).toString(), 'hello', 'the first byte is still there to read');
  });

  it('cuts off a body that sends nothing for the idle time, and drains a refused body to its end', async () => {
    const silent = new PassThrough();
    const watch = new BodyWatch(silent, 100);
    const cut = new Promise<Error>((resolve) => silent.once('error', resolve));
    const err = (await cut) as AppError;
    assert.equal(err.code, 'BAD_USER_INPUT');
    assert.equal(err.message, 'The chunk body sent nothing for 0.1 s and was cut off.');
    watch.stop();

    const refused = new PassThrough();
    const drained = new BodyWatch(refused, 10_000);
    refused.write(randomFile(1000));
    const done = drained.drain();
    await sleep(20);
    refused.end(randomFile(1000));
    await done;
    assert.equal(refused.readableEnded, true, 'read to its end');
    drained.stop();
  });

  it('cuts a long body into segments of the given size that together are the body, the last one marked', async () => {
    const bytes = randomFile(1_000_003);
    // Pieces of uneven sizes that straddle segment boundaries, sometimes slowly.
    const source = new PassThrough();
    (async () => {
      for (let at = 0, i = 0; at < bytes.length; i++) {
        const piece = bytes.subarray(at, at + 7_001 + (i % 5) * 30_011);
        at += piece.length;
        if (!source.write(piece)) await new Promise((resolve) => source.once('drain', resolve));
        if (i % 7 === 0) await sleep(1);
      }
      source.end();
    })();
    const segments = new BodySegments(source, 100_000);
    const received: Buffer[] = [];
    const marks: boolean[] = [];
    for (;;) {
      const segment = segments.next();
      const parts: Buffer[] = [];
      for await (const part of segment) parts.push(part as Buffer);
      const whole = Buffer.concat(parts);
      if (whole.length === 0) break;
      assert.ok(whole.length <= 100_000);
      received.push(whole);
      marks.push(segment.endedWithSource);
      if (segment.endedWithSource) break;
    }
    assert.equal(md5(Buffer.concat(received)), md5(bytes), 'the segments, in order, are the body');
    assert.deepEqual(received.map((r) => r.length), [...Array(10).fill(100_000), 3]);
    assert.deepEqual(marks, [...Array(10).fill(false), true], 'only the last segment ends with the body');
  });

  it('passes a body cut off mid-segment to that segment as an error', async () => {
    const source = new PassThrough();
    const segment = new BodySegments(source, 1000).next();
    source.write(Buffer.alloc(10));
    setImmediate(() => source.destroy(new Error('client went away')));
    await assert.rejects(async () => {
      for await (const _ of segment);
    }, /client went away/);
  });
});
