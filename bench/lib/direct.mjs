// Direct uploads against the proxied path (npm run bench -- --s3-endpoint URL): the server's CPU
// per GiB when the bytes pass through it (chunks turned into S3 parts) and when the client PUTs
// the parts to the bucket itself and the server only signs, joins and reads the object once to
// verify its md5. Both through the SDK, on one server process with STORAGE=s3 and its embedded
// database, so the two differ only in the byte path.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { cpuSeconds, freePort, startProcess, waitHealthy } from './processes.mjs';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

async function writeSource(file, size) {
  const block = randomBytes(8 * MiB);
  await pipeline(
    Readable.from((function* () {
      for (let left = size; left > 0; left -= block.length) yield left >= block.length ? block : block.subarray(0, left);
    })()),
    createWriteStream(file),
  );
}

/**
 * Runs `runs` uploads of `size` bytes each way; resolves with
 * { size, runs, proxied: { cpuSecondsPerGiB, seconds }, direct: { cpuSecondsPerGiB, seconds } }.
 */
export async function directVsProxied({ root, tmp, endpoint, size, runs = 1, progress }) {
  const dir = path.join(tmp, 'direct');
  await mkdir(dir, { recursive: true });
  const source = path.join(dir, 'source.bin');
  await writeSource(source, size);
  const port = await freePort();
  const password = `bench-${randomBytes(6).toString('hex')}`;
  const env = {
    PATH: process.env.PATH,
    NODE_ENV: 'production',
    JWT_SECRET: randomBytes(32).toString('hex'),
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: path.join(dir, 'data'),
    ADMIN_USERNAME: 'bench',
    ADMIN_PASSWORD: password,
    LOG_LEVEL: 'warn',
    CLEANUP_INTERVAL: '0',
    STORAGE: 's3',
    S3_ENDPOINT: endpoint,
    S3_REGION: 'us-east-1',
    S3_BUCKET: `bench-${Date.now()}-${randomBytes(3).toString('hex')}`,
    S3_FORCE_PATH_STYLE: 'true',
    S3_ACCESS_KEY_ID: process.env.BENCH_S3_ACCESS_KEY_ID ?? 'test:tester',
    S3_SECRET_ACCESS_KEY: process.env.BENCH_S3_SECRET_ACCESS_KEY ?? 'testing',
  };
  const proc = startProcess('server-s3', ['--expose-gc', path.join(root, 'dist/src/main.js')], env, path.join(dir, 'server.log'));
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitHealthy(proc, `${url}/healthz`);
    const { UploadClient } = await import(path.join(root, 'dist/client/src/node.js'));
    const client = new UploadClient({ url });
    await client.login('bench', password);
    const measure = async (direct) => {
      let cpu = 0;
      let seconds = 0;
      for (let run = 0; run < runs; run++) {
        const before = await cpuSeconds(proc.pid);
        const t0 = performance.now();
        const result = await client.upload(source, { fingerprint: null, direct: direct ? 'auto' : false, chunkSize: 8 * MiB, partSize: 8 * MiB });
        seconds += (performance.now() - t0) / 1000;
        cpu += (await cpuSeconds(proc.pid)) - before;
        if (result.file.status !== 'READY') throw new Error(`the ${direct ? 'direct' : 'proxied'} upload ended ${result.file.status}`);
        await client.deleteFile(result.file.id);
      }
      return { cpuSecondsPerGiB: Number((cpu / ((size * runs) / GiB)).toFixed(3)), seconds: Number((seconds / runs).toFixed(2)) };
    };
    progress?.(`direct vs proxied on S3: ${size / MiB} MiB × ${runs}, proxied`);
    const proxied = await measure(false);
    progress?.('direct vs proxied on S3: direct (until READY)');
    const direct = await measure(true);
    return { size, runs, proxied, direct };
  } finally {
    await proc.stop();
  }
}
