// The random source file, with the md5 of every byte range the bench will upload computed
// while it is generated (so verifying a server run never needs a second read).
import { createHash, randomFill } from 'node:crypto';
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';

const fillRandom = promisify(randomFill);
const BLOCK = 4 * 1024 * 1024;

/**
 * Writes `size` random bytes to `path` and returns a map "start:length" -> md5 hex for each
 * of `ranges` ({ start, length }), all within the file.
 */
export async function generateSource(path, size, ranges) {
  const unique = new Map(ranges.map((r) => [rangeKey(r.start, r.length), r]));
  const hashers = [...unique.values()].map((r) => ({ ...r, end: r.start + r.length, hash: createHash('md5') }));
  const fh = await open(path, 'w');
  try {
    const block = Buffer.allocUnsafe(BLOCK);
    for (let position = 0; position < size; ) {
      const n = Math.min(BLOCK, size - position);
      const bytes = block.subarray(0, n);
      await fillRandom(bytes);
      for (const h of hashers) {
        const from = Math.max(h.start, position);
        const to = Math.min(h.end, position + n);
        if (from < to) h.hash.update(bytes.subarray(from - position, to - position));
      }
      let written = 0;
      while (written < n) written += (await fh.write(bytes, written, n - written, position + written)).bytesWritten;
      position += n;
    }
  } finally {
    await fh.close();
  }
  return new Map(hashers.map((h) => [rangeKey(h.start, h.length), h.hash.digest('hex')]));
}

export const rangeKey = (start, length) => `${start}:${length}`;
