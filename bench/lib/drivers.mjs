// One upload of a byte range of the source file to each kind of target, timed and checked.
// Each driver fills `run` as it goes: `seconds` (end to end), `chunkSeconds` (the bytes only),
// and what `discard` must remove afterwards (`fileId` on our server, `files` on disk), so that
// even a failed upload leaves nothing behind. A failed check throws.
import { randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';

const uniqueName = (label) => `bench-${label}-${randomBytes(4).toString('hex')}`;

/** Sends [start, start + size) in chunks of `chunkSize` through `send(offset, length)`, which answers { offset }. */
async function sendChunks({ size, chunkSize, latencies }, send) {
  for (let offset = 0; offset < size; ) {
    const length = Math.min(chunkSize, size - offset);
    const c0 = performance.now();
    const answer = await send(offset, length);
    latencies?.push(performance.now() - c0);
    offset += length;
    if (answer.offset !== offset) throw new Error(`the server reports offset ${answer.offset} after a chunk ending at ${offset}`);
  }
}

/** Our GraphQL path: startUpload → uploadChunk in order → completeUpload, checking the md5 it reports. */
export async function graphqlUpload({ api, source, md5 }, spec, run) {
  const { start, size, label } = spec;
  const t0 = performance.now();
  const upload = await api.startUpload(`${uniqueName(label)}.bin`, size);
  const t1 = performance.now();
  await sendChunks(spec, (offset, length) => api.uploadChunk(upload.id, offset, source, start + offset, length));
  const t2 = performance.now();
  const file = await api.completeUpload(upload.id, md5);
  const t3 = performance.now();
  run.fileId = file.id;
  if (file.md5 !== md5 || file.size !== size) {
    throw new Error(`verification failed: completeUpload says md5 ${file.md5}, ${file.size} bytes; the source range has md5 ${md5}, ${size} bytes`);
  }
  Object.assign(run, { seconds: (t3 - t0) / 1000, chunkSeconds: (t2 - t1) / 1000, startMs: t1 - t0, completeMs: t3 - t2 });
}

/** Parts in flight at once for graphql-parts: what the SDK's direct uploads send, well under serverLimits.maxPartsAhead (32). */
export const PARTS_IN_FLIGHT = 4;

/**
 * Our GraphQL path in parts: startUpload with partSize = chunkSize → uploadPart with
 * PARTS_IN_FLIGHT requests at once, taken in ascending order by a small worker pool (so the
 * server's contiguous prefix keeps up and maxPartsAhead is never met) → completeUpload.
 * `latencies` gets each part's request time, as sendChunks gives each chunk's.
 */
export async function graphqlPartsUpload({ api, source, md5 }, spec, run) {
  const { start, size, chunkSize, label, latencies, inFlight = PARTS_IN_FLIGHT } = spec;
  const partSize = Math.min(chunkSize, size);
  const partCount = Math.ceil(size / partSize);
  const t0 = performance.now();
  const upload = await api.startUpload(`${uniqueName(label)}.bin`, size, { partSize });
  if (upload.partCount !== partCount) throw new Error(`startUpload answers partCount ${upload.partCount}, not ${partCount}`);
  const t1 = performance.now();
  let next = 1;
  let failure;
  let offset = 0;
  const worker = async () => {
    // A failed part stops every worker from taking another, so a run fails fast and whole.
    while (!failure && next <= partCount) {
      const n = next++;
      const partStart = (n - 1) * partSize;
      const length = Math.min(partSize, size - partStart);
      const c0 = performance.now();
      try {
        const answer = await api.uploadPart(upload.id, n, source, start + partStart, length);
        latencies?.push(performance.now() - c0);
        offset = Math.max(offset, answer.offset);
      } catch (err) {
        failure ??= new Error(`part ${n} of ${partCount}: ${err.message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, partCount) }, worker));
  if (failure) throw failure;
  // Not a failure: a part that arrives while another request is merging leaves its merge to
  // that request, which may miss it by a hair; completeUpload then merges it (and its time
  // shows it). Kept to see how often.
  run.unmergedAfterParts = size - offset;
  const t2 = performance.now();
  const file = await api.completeUpload(upload.id, md5);
  const t3 = performance.now();
  run.fileId = file.id;
  if (file.md5 !== md5 || file.size !== size) {
    throw new Error(`verification failed: completeUpload says md5 ${file.md5}, ${file.size} bytes; the source range has md5 ${md5}, ${size} bytes`);
  }
  Object.assign(run, { seconds: (t3 - t0) / 1000, chunkSeconds: (t2 - t1) / 1000, startMs: t1 - t0, completeMs: t3 - t2 });
}

/**
 * tus: creation → PATCHes in order (one PATCH when chunkSize is the size, as tus-js-client's
 * default chunkSize: Infinity sends). Then `verify(uploadPath, run)` checks what was filed,
 * outside the timing: our server files the upload when its last byte is stored, the reference
 * only keeps the bytes.
 */
export async function tusUpload({ api, source, verify }, spec, run) {
  const { start, size, label } = spec;
  const t0 = performance.now();
  const uploadPath = await api.create(`${uniqueName(label)}.bin`, size);
  run.tusPath = uploadPath;
  const t1 = performance.now();
  await sendChunks(spec, (offset, length) => api.patch(uploadPath, offset, source, start + offset, length));
  const t2 = performance.now();
  Object.assign(run, { seconds: (t2 - t0) / 1000, chunkSeconds: (t2 - t1) / 1000 });
  await verify(uploadPath, run);
}

/** Our tus path's check: the upload id (the last path segment) is the File's id, filed with the right size and md5. */
export function verifyFiled(graphql, md5, size) {
  return async (uploadPath, run) => {
    const id = uploadPath.split('/').pop();
    run.fileId = id;
    const file = await graphql.file(id);
    if (!file) throw new Error(`verification failed: upload ${id} took every byte but no File ${id} was filed`);
    if (file.md5 !== md5 || file.size !== size) {
      throw new Error(`verification failed: File ${id} has md5 ${file.md5}, ${file.size} bytes; the source range has md5 ${md5}, ${size} bytes`);
    }
  };
}

/** The reference's check: @tus/file-store keeps <id> and <id>.json in its directory; the bytes must all be there. */
export function verifyStored(dir, size) {
  return async (uploadPath, run) => {
    const file = path.join(dir, uploadPath.split('/').pop());
    run.files = [file, `${file}.json`];
    const stored = (await stat(file)).size;
    if (stored !== size) throw new Error(`@tus/server stored ${stored} bytes, not ${size}`);
  };
}

/** A baseline (raw-http, raw-safe): the raw body at ?offset=; raw-safe's md5 is checked too. */
export async function rawUpload({ api, dir, source, md5 }, spec, run) {
  const { start, size, label } = spec;
  const name = uniqueName(label);
  run.files = [path.join(dir, name)];
  let last;
  const t0 = performance.now();
  await sendChunks(spec, async (offset, length) => (last = await api.append(name, offset, source, start + offset, length)));
  const seconds = (performance.now() - t0) / 1000;
  Object.assign(run, { seconds, chunkSeconds: seconds });
  const stored = (await stat(run.files[0])).size;
  if (stored !== size) throw new Error(`the baseline stored ${stored} bytes, not ${size}`);
  if (last.md5 !== undefined && last.md5 !== md5) throw new Error(`verification failed: the baseline hashed md5 ${last.md5}; the source range has md5 ${md5}`);
}
