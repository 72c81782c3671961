/**
 * The same bytes from the same seed in Node and in a browser page (a test page bundles this
 * file too), so a test knows the md5 of a file the page builds without sending it there.
 * xorshift32: fast enough for megabytes, and far from compressible.
 */
export function seededBytes(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = seed | 0 || 1;
  for (let i = 0; i < size; i++) {
    if ((i & 3) === 0) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
    }
    bytes[i] = (x >>> ((i & 3) * 8)) & 0xff;
  }
  return bytes;
}
