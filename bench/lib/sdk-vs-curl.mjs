// "SDK upload vs curl": the same file, the same chunk size, against the same server, once through
// the Node SDK (client/src/node.ts, as the CLI uses it) and once as the README's shell loop does it
// (one curl process per chunk, the chunk posted with -F). Measured, not asserted: issue 12 found
// the SDK at about half curl's speed.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { generateSource, rangeKey } from './source.mjs';

const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
const CHUNK = 8 * MiB;
const run = promisify(execFile);

const summary = (ms) => {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { n: sorted.length, minMs: Math.round(sorted[0]), medianMs: Math.round(at(0.5)), maxMs: Math.round(sorted.at(-1)) };
};

/** `bench`: the running Bench (server URL, admin login, api, tmp dir, runs). */
export async function sdkVsCurl(bench, progress) {
  const { UploadClient } = createRequire(import.meta.url)('../../dist/client/src/node.js');
  const file = path.join(bench.tmp, 'sdk-vs-curl.bin');
  const chunkFile = path.join(bench.tmp, 'sdk-vs-curl.chunk');
  const md5 = (await generateSource(file, SIZE, [{ start: 0, length: SIZE }])).get(rangeKey(0, SIZE));
  progress(`SDK upload vs curl: ${SIZE / MiB} MiB in ${CHUNK / MiB} MiB chunks × ${bench.options.runs} runs`);
  try {
    const sdk = new UploadClient({ url: bench.serverUrl });
    await sdk.login(bench.admin.username, bench.admin.password);

    const viaSdk = async (verifyChunks) => {
      const t0 = performance.now();
      let last = t0;
      let offset = 0;
      let events = 0;
      const chunkMs = [];
      const result = await sdk.upload(file, {
        chunkSize: CHUNK,
        fingerprint: null,
        verifyChunks,
        onProgress: (p) => {
          events++;
          if (p.phase === 'uploading' && p.bytesUploaded > offset) {
            const now = performance.now();
            chunkMs.push(now - last);
            last = now;
            offset = p.bytesUploaded;
          }
        },
      });
      const seconds = (performance.now() - t0) / 1000;
      if (result.file.md5 !== md5) throw new Error(`SDK upload: md5 ${result.file.md5}, expected ${md5}`);
      await bench.api.deleteFile(result.file.id);
      return { seconds, mbps: SIZE / 1e6 / seconds, progressEvents: events, chunk: summary(chunkMs) };
    };

    const viaCurl = async () => {
      const source = await open(file, 'r');
      const buffer = Buffer.allocUnsafe(CHUNK);
      const chunkMs = [];
      let cuttingMs = 0;
      const t0 = performance.now();
      try {
        const upload = await bench.api.startUpload('sdk-vs-curl.bin', SIZE);
        for (let offset = 0; offset < SIZE; ) {
          // Cutting the chunk out (the README's tail | head) is not counted; start, curl and complete are.
          const k0 = performance.now();
          const { bytesRead } = await source.read(buffer, 0, Math.min(CHUNK, SIZE - offset), offset);
          const out = await open(chunkFile, 'w');
          await out.write(buffer, 0, bytesRead);
          await out.close();
          cuttingMs += performance.now() - k0;
          const operations = JSON.stringify({
            query: `mutation($c: Upload!) { uploadChunk(uploadId: "${upload.id}", offset: ${offset}, chunk: $c) { offset } }`,
            variables: { c: null },
          });
          const c0 = performance.now();
          const { stdout } = await run('curl', [
            '-sS', `${bench.serverUrl}/graphql`,
            '-H', `authorization: Bearer ${bench.api.token}`, '-H', 'apollo-require-preflight: true',
            '-F', `operations=${operations}`, '-F', 'map={"0":["variables.c"]}', '-F', `0=@${chunkFile}`,
          ]);
          chunkMs.push(performance.now() - c0);
          const answer = JSON.parse(stdout);
          if (answer.errors) throw new Error(`curl chunk at ${offset}: ${JSON.stringify(answer.errors)}`);
          offset = answer.data.uploadChunk.offset;
        }
        const done = await bench.api.completeUpload(upload.id, md5);
        const seconds = (performance.now() - t0 - cuttingMs) / 1000;
        if (done.md5 !== md5) throw new Error(`curl upload: md5 ${done.md5}, expected ${md5}`);
        await bench.api.deleteFile(done.id);
        return { seconds, mbps: SIZE / 1e6 / seconds, chunk: summary(chunkMs) };
      } finally {
        await source.close();
      }
    };

    // Without chunkMd5 the server does the same work for the SDK as for curl (one md5 pass).
    const ways = { sdk: () => viaSdk(true), sdkWithoutChunkMd5: () => viaSdk(false), curl: viaCurl };
    const runs = { sdk: [], sdkWithoutChunkMd5: [], curl: [] };
    const names = Object.keys(ways);
    for (let r = 0; r < bench.options.runs; r++) {
      // Each run starts with another way, so drift on the machine weighs on all alike.
      for (let i = 0; i < names.length; i++) {
        const name = names[(r + i) % names.length];
        runs[name].push(await ways[name]());
      }
    }
    const median = (list) => Number(list.map((x) => x.mbps).sort((a, b) => a - b)[Math.floor(list.length / 2)].toFixed(1));
    const row = { size: SIZE, chunkSize: CHUNK, sdkMBps: median(runs.sdk), sdkWithoutChunkMd5MBps: median(runs.sdkWithoutChunkMd5), curlMBps: median(runs.curl), runs };
    const chunks = (name) => runs[name].map((x) => `${x.chunk.medianMs} (${x.chunk.minMs}-${x.chunk.maxMs})`).join(', ');
    progress(`  SDK ${row.sdkMBps} MB/s, SDK without chunkMd5 ${row.sdkWithoutChunkMd5MBps} MB/s, curl ${row.curlMBps} MB/s`);
    progress(`  ms per chunk, median (min-max) per run: SDK ${chunks('sdk')}; without chunkMd5 ${chunks('sdkWithoutChunkMd5')}; curl ${chunks('curl')}`);
    return row;
  } finally {
    await rm(file, { force: true });
    await rm(chunkFile, { force: true });
  }
}
