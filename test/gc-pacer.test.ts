import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { GcPacer } from '../src/gc-pacer';

const KiB = 1024;
const GC_PACER = path.resolve(__dirname, '../src/gc-pacer.js');

/**
 * Minor collections while a pacer made with `everyBytes` receives `pieces` × `pieceBytes`,
 * counted in a process started as the server is (`node --expose-gc`): gc() exists only there.
 */
function minorCollectionsInChild(everyBytes: number, pieces: number, pieceBytes: number): number {
  const script = `
    const { constants, PerformanceObserver } = require('node:perf_hooks');
    const { GcPacer } = require(${JSON.stringify(GC_PACER)});
    const pacer = GcPacer.create(${everyBytes});
    if (!pacer) throw new Error('no pacer although gc() is exposed');
    const entries = [];
    const observer = new PerformanceObserver((list) => entries.push(...list.getEntries()));
    observer.observe({ entryTypes: ['gc'] });
    for (let i = 0; i < ${pieces}; i++) pacer.received(${pieceBytes});
    // GC entries are delivered asynchronously.
    setTimeout(() => {
      observer.disconnect();
      console.log(entries.filter((e) => e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR).length);
    }, 50);`;
  const child = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(child.status, 0, child.stderr);
  return Number(child.stdout.trim());
}

describe('GC pacer', () => {
  it('runs a minor collection for every `everyBytes` of data received (node --expose-gc)', () => {
    // 40 × 256 KiB in 64 KiB pieces: 40 collections, far more than this test's own allocation causes.
    const collections = minorCollectionsInChild(256 * KiB, 160, 64 * KiB);
    assert.ok(collections >= 40, `${collections} minor collections, expected at least 40`);
  });

  it('counts across calls: less than `everyBytes` in total collects nothing by itself', () => {
    const collections = minorCollectionsInChild(1024 * KiB, 15, 64 * KiB);
    assert.ok(collections <= 1, `${collections} minor collections for 960 KiB with a 1 MiB pace`);
  });

  it('is off with a pace of 0', () => {
    assert.equal(GcPacer.create(0), undefined);
  });

  const exposed = typeof globalThis.gc === 'function' && 'this process was started with --expose-gc';
  it('is off, and says so at debug level, in a process without --expose-gc; it exposes nothing itself', { skip: exposed }, () => {
    const lines: string[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
    assert.equal(GcPacer.create(256 * KiB, log), undefined);
    assert.equal(typeof globalThis.gc, 'undefined', 'gc() is still not there');
    assert.equal(lines.length, 1);
    assert.match(JSON.parse(lines[0]).msg, /--expose-gc/);
  });
});
