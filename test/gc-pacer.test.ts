import assert from 'node:assert/strict';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { GcPacer } from '../src/gc-pacer';
import { sleep } from './helpers/timing';

const KiB = 1024;

/** Minor collections that run while `work` does. */
async function minorCollectionsDuring(work: () => void): Promise<number> {
  const entries: PerformanceEntry[] = [];
  const observer = new PerformanceObserver((list) => entries.push(...list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  work();
  // GC entries are delivered asynchronously.
  await sleep(50);
  observer.disconnect();
  return entries.filter((e) => (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR).length;
}

describe('GC pacer', () => {
  it('runs a minor collection for every `everyBytes` of data received', async () => {
    const pacer = GcPacer.create(256 * KiB)!;
    // 40 × 256 KiB in 64 KiB pieces: 40 collections, far more than this test's own allocation causes.
    const collections = await minorCollectionsDuring(() => {
      for (let i = 0; i < 160; i++) pacer.received(64 * KiB);
    });
    assert.ok(collections >= 40, `${collections} minor collections, expected at least 40`);
  });

  it('counts across calls: less than `everyBytes` in total collects nothing by itself', async () => {
    const pacer = GcPacer.create(1024 * KiB)!;
    const collections = await minorCollectionsDuring(() => {
      for (let i = 0; i < 15; i++) pacer.received(64 * KiB);
    });
    assert.ok(collections <= 1, `${collections} minor collections for 960 KiB with a 1 MiB pace`);
  });

  it('is off with a pace of 0', () => {
    assert.equal(GcPacer.create(0), undefined);
  });
});
