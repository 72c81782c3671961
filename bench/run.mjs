#!/usr/bin/env node
// The upload benchmark (npm run bench): the real server, started as its own process, against a
// minimal node:http baseline (bench/baseline-server.mjs), driven by the same client over loopback.
// Run `node bench/run.mjs --help` for the options. Not part of `npm test`.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import pg from 'pg';
import { BaselineApi, GraphQLApi, HttpClient } from './lib/http-client.mjs';
import { cpuSeconds, freePort, machineCpu, memory, startProcess, waitHealthy } from './lib/processes.mjs';
import { generateSource, rangeKey } from './lib/source.mjs';
import { sdkVsCurl } from './lib/sdk-vs-curl.mjs';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SERVER_MAIN = path.join(ROOT, 'dist/src/main.js');
const BASELINE_MAIN = path.join(ROOT, 'bench/baseline-server.mjs');

const HELP = `Usage: npm run bench -- [options]      (or: node bench/run.mjs [options] after npm run build)

  --quick              a small variant (64 MiB instead of 512 MiB, ...): about 15 s
  --embedded           the server on its embedded PostgreSQL (PGlite) instead of a fresh
                       database bench_<random> on --database-url (dropped at the end)
  --database-url URL   PostgreSQL to create the bench database on
                       (default postgres://postgres@127.0.0.1:5432/postgres)
  --fsync true|false   CHUNK_FSYNC for the server, and fsync before answering for the baseline
                       (default: the server's own default)
  --runs N             runs per sequential / concurrent / small-chunk measurement (default 3)
  --log-level LEVEL    the server's LOG_LEVEL (default: the server's own default)
  --server-node-args="ARGS"  extra node flags for the server (note the =), e.g.
                       --server-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"
  --env KEY=VALUE      more environment for the server (repeatable), e.g. --env BODY_TIMEOUT=120
  --out FILE           where to write the JSON (default bench/results/latest.json)
  --keep               keep the temporary directory (source file, data, server logs)
  --help
`;

const PROFILES = {
  full: {
    seqSize: 512 * MiB,
    chunkSizes: [1 * MiB, 8 * MiB, 32 * MiB],
    concurrency: 4,
    concSize: 128 * MiB,
    concChunk: 8 * MiB,
    completeSizes: [1 * MiB, 64 * MiB, 512 * MiB],
    completeRounds: 5,
    completeChunk: 8 * MiB,
    smallChunk: 64 * KiB,
    smallSize: 16 * MiB,
    warmupSize: 16 * MiB,
  },
  quick: {
    seqSize: 64 * MiB,
    chunkSizes: [1 * MiB, 8 * MiB, 32 * MiB],
    concurrency: 4,
    concSize: 16 * MiB,
    concChunk: 8 * MiB,
    completeSizes: [1 * MiB, 16 * MiB, 64 * MiB],
    completeRounds: 3,
    completeChunk: 8 * MiB,
    smallChunk: 64 * KiB,
    smallSize: 4 * MiB,
    warmupSize: 8 * MiB,
  },
};

// ---------------------------------------------------------------------------------------------

const started = performance.now();
const loadAtStart = os.loadavg()[0];
const progress = (msg) => process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
const median = (xs) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const percentile = (xs, p) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const mbps = (bytes, seconds) => bytes / 1e6 / seconds;
const round = (x, digits = 2) => (x == null || !Number.isFinite(x) ? null : Number(x.toFixed(digits)));
const sizeLabel = (bytes) => (bytes >= MiB ? `${bytes / MiB} MiB` : `${bytes / KiB} KiB`);

function parseOptions() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      embedded: { type: 'boolean', default: false },
      'database-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
      fsync: { type: 'string' },
      runs: { type: 'string', default: '3' },
      'log-level': { type: 'string' },
      'server-node-args': { type: 'string', default: '' },
      env: { type: 'string', multiple: true, default: [] },
      out: { type: 'string', default: path.join(ROOT, 'bench/results/latest.json') },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  if (values.fsync !== undefined && !['true', 'false'].includes(values.fsync)) throw new Error('--fsync takes true or false');
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs takes a whole number ≥ 1');
  const extraEnv = {};
  for (const pair of values.env) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new Error(`--env takes KEY=VALUE, not ${JSON.stringify(pair)}`);
    extraEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { ...values, runs, extraEnv, profileName: values.quick ? 'quick' : 'full', profile: PROFILES[values.quick ? 'quick' : 'full'] };
}

/** What the server makes of CHUNK_FSYNC (unset: its default), read from its compiled config rather than repeated here. */
function serverFsync(scratchDir, chunkFsyncEnv) {
  const { loadConfig } = createRequire(import.meta.url)(path.join(ROOT, 'dist/src/config.js'));
  return loadConfig({ JWT_SECRET: 'x'.repeat(48), DATA_DIR: scratchDir, CHUNK_FSYNC: chunkFsyncEnv }).chunkFsync;
}

// ---------------------------------------------------------------------------------------------

class Bench {
  constructor(options) {
    this.options = options;
    this.p = options.profile;
    this.failures = [];
    this.cleanups = [];
    this.phaseMemory = {};
  }

  async setUp() {
    if (!existsSync(SERVER_MAIN)) throw new Error(`${SERVER_MAIN} is missing: build first (npm run build), or use npm run bench`);
    this.tmp = await mkdtemp(path.join(os.tmpdir(), 'upload-bench-'));
    this.cleanups.push(async () => {
      if (this.options.keep) return progress(`kept ${this.tmp}`);
      if (!this.keepLogs) return rm(this.tmp, { recursive: true, force: true });
      // After a failure: the logs stay for a look, the bulky data goes.
      for (const bulky of ['source.bin', 'server-data', 'baseline-data']) await rm(path.join(this.tmp, bulky), { recursive: true, force: true });
      progress(`server and baseline logs kept in ${this.tmp}`);
    });
    this.fsync = serverFsync(this.tmp, this.options.fsync ?? this.options.extraEnv.CHUNK_FSYNC);

    // One random source file; every upload is a byte range of it, with its md5 known up front.
    const p = this.p;
    this.sourceSize = Math.max(p.seqSize, p.concurrency * p.concSize, ...p.completeSizes, p.smallSize, p.warmupSize);
    this.source = path.join(this.tmp, 'source.bin');
    const ranges = [
      { start: 0, length: p.seqSize },
      ...Array.from({ length: p.concurrency }, (_, i) => ({ start: i * p.concSize, length: p.concSize })),
      ...p.completeSizes.map((size) => ({ start: 0, length: size })),
      { start: 0, length: p.smallSize },
      { start: 0, length: p.warmupSize },
      { start: 0, length: Math.min(p.warmupSize, 2 * MiB) },
    ];
    progress(`generating ${sizeLabel(this.sourceSize)} of random data in ${this.source}`);
    this.sums = await generateSource(this.source, this.sourceSize, ranges);

    await this.startServer();
    await this.startBaseline();
  }

  async startServer() {
    const { options } = this;
    if (!options.embedded) {
      const name = `bench_${randomBytes(6).toString('hex')}`;
      await withPg(options['database-url'], (c) => c.query(`create database "${name}"`));
      this.cleanups.unshift(() => withPg(options['database-url'], (c) => c.query(`drop database if exists "${name}" with (force)`)));
      const url = new URL(options['database-url']);
      url.pathname = `/${name}`;
      this.databaseUrl = url.toString();
      this.databaseLabel = `PostgreSQL ${url.host}/${name}`;
    } else {
      this.databaseLabel = 'embedded PGlite';
    }
    const port = await freePort();
    const dataDir = path.join(this.tmp, 'server-data');
    this.admin = { username: 'bench', password: `pw-${randomBytes(12).toString('hex')}` };
    // Only what a process needs from this shell: the server's own defaults apply to everything
    // the bench does not set (or --env sets), whatever the calling shell exports.
    const env = Object.fromEntries(['PATH', 'HOME', 'LANG', 'TMPDIR', 'TZ'].filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
    Object.assign(env, {
      NODE_ENV: 'production',
      JWT_SECRET: randomBytes(48).toString('base64url'),
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      ADMIN_USERNAME: this.admin.username,
      ADMIN_PASSWORD: this.admin.password,
      ...(this.databaseUrl ? { DATABASE_URL: this.databaseUrl } : {}),
      ...(options.fsync !== undefined ? { CHUNK_FSYNC: options.fsync } : {}),
      ...(options['log-level'] ? { LOG_LEVEL: options['log-level'] } : {}),
      ...options.extraEnv,
    });
    this.serverEnv = Object.fromEntries(
      Object.entries(env).filter(([k]) => !['PATH', 'HOME', 'LANG', 'TMPDIR', 'TZ', 'JWT_SECRET', 'ADMIN_PASSWORD'].includes(k)),
    );
    const nodeArgs = options['server-node-args'].split(/\s+/).filter(Boolean);
    // --expose-gc as `npm start` and the Docker image give it: GC pacing needs gc().
    this.server = startProcess('server', ['--expose-gc', ...nodeArgs, SERVER_MAIN], env, path.join(this.tmp, 'server.log'));
    this.cleanups.unshift(() => this.server.stop());
    this.serverUrl = `http://127.0.0.1:${port}`;
    progress(`starting the server (${this.databaseLabel}, CHUNK_FSYNC=${this.fsync}) on ${this.serverUrl}, pid ${this.server.pid}`);
    await waitHealthy(this.server, `${this.serverUrl}/healthz`);
    this.serverHttp = new HttpClient(this.serverUrl);
    this.api = await new GraphQLApi(this.serverHttp).login(this.admin.username, this.admin.password);
  }

  async startBaseline() {
    const port = await freePort();
    this.baselineDir = path.join(this.tmp, 'baseline-data');
    await mkdir(this.baselineDir, { recursive: true });
    const env = { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1', DIR: this.baselineDir, FSYNC: String(this.fsync) };
    this.baseline = startProcess('baseline', [BASELINE_MAIN], env, path.join(this.tmp, 'baseline.log'));
    this.cleanups.unshift(() => this.baseline.stop());
    const url = `http://127.0.0.1:${port}`;
    await waitHealthy(this.baseline, `${url}/`, { ok: (status) => status > 0 });
    this.baselineHttp = new HttpClient(url);
    this.baselineApi = new BaselineApi(this.baselineHttp);
  }

  /** Stops both servers, drops the database, removes the temporary files; once, however often called. */
  tearDown() {
    this.tearingDown ??= (async () => {
      this.serverHttp?.close();
      this.baselineHttp?.close();
      for (const cleanup of this.cleanups) {
        try {
          await cleanup();
        } catch (err) {
          progress(`cleanup: ${err.message}`);
        }
      }
    })();
    return this.tearingDown;
  }

  // --- one upload each way ------------------------------------------------------------------

  /** start → chunks in order → complete, verifying the md5 the server reports. `discard` removes the File afterwards. */
  async serverUpload({ start, size, chunkSize, label, latencies }) {
    const md5 = this.sums.get(rangeKey(start, size));
    const run = { ok: false, size, chunkSize };
    const t0 = performance.now();
    try {
      const upload = await this.api.startUpload(`bench-${label}-${randomBytes(4).toString('hex')}.bin`, size);
      const t1 = performance.now();
      for (let offset = 0; offset < size; ) {
        const length = Math.min(chunkSize, size - offset);
        const c0 = performance.now();
        const answer = await this.api.uploadChunk(upload.id, offset, this.source, start + offset, length);
        latencies?.push(performance.now() - c0);
        offset += length;
        if (answer.offset !== offset) throw new Error(`the server reports offset ${answer.offset} after a chunk ending at ${offset}`);
      }
      const t2 = performance.now();
      const file = await this.api.completeUpload(upload.id, md5);
      const t3 = performance.now();
      run.fileId = file.id;
      if (file.md5 !== md5 || file.size !== size) {
        throw new Error(`verification failed: completeUpload says md5 ${file.md5}, ${file.size} bytes; the source range has md5 ${md5}, ${size} bytes`);
      }
      Object.assign(run, {
        ok: true,
        seconds: (t3 - t0) / 1000,
        chunkSeconds: (t2 - t1) / 1000,
        startMs: t1 - t0,
        completeMs: t3 - t2,
        mbps: mbps(size, (t3 - t0) / 1000),
      });
    } catch (err) {
      run.error = err.message;
      this.failures.push({ target: 'server', label, size, chunkSize, error: err.message });
      progress(`  FAILED server ${label}: ${err.message}`);
    }
    return run;
  }

  /** The same bytes, same chunks, to the baseline; its file is checked for size (`discard` removes it). */
  async baselineUpload({ start, size, chunkSize, label, latencies }) {
    const name = `${label}-${randomBytes(4).toString('hex')}`;
    const run = { ok: false, size, chunkSize, baselineFile: path.join(this.baselineDir, name) };
    const t0 = performance.now();
    try {
      for (let offset = 0; offset < size; ) {
        const length = Math.min(chunkSize, size - offset);
        const c0 = performance.now();
        const answer = await this.baselineApi.append(name, offset, this.source, start + offset, length);
        latencies?.push(performance.now() - c0);
        offset += length;
        if (answer.offset !== offset) throw new Error(`the baseline reports offset ${answer.offset} after a chunk ending at ${offset}`);
      }
      const seconds = (performance.now() - t0) / 1000;
      const stored = (await stat(path.join(this.baselineDir, name))).size;
      if (stored !== size) throw new Error(`the baseline stored ${stored} bytes, not ${size}`);
      Object.assign(run, { ok: true, seconds, chunkSeconds: seconds, mbps: mbps(size, seconds) });
    } catch (err) {
      run.error = err.message;
      this.failures.push({ target: 'baseline', label, size, chunkSize, error: err.message });
      progress(`  FAILED baseline ${label}: ${err.message}`);
    }
    return run;
  }

  /** Deletes what an upload stored (File or baseline file), outside every measurement. */
  async discard(run) {
    for (const r of run.uploads ?? [run]) {
      if (r.fileId) await this.api.deleteFile(r.fileId).catch((err) => progress(`  could not delete file ${r.fileId}: ${err.message}`));
      if (r.baselineFile) await rm(r.baselineFile, { force: true });
    }
  }

  /**
   * Runs `work` (one measured run), adding the CPU time the process spent to `account`
   * ({ cpuSeconds, bytes }); then discards what it stored.
   */
  async metered(proc, account, bytes, work) {
    if (!proc.alive) throw new Error(`the ${proc.name} process has exited; see ${proc.logFile}`);
    const before = await cpuSeconds(proc.pid);
    const result = await work();
    account.cpuSeconds += (await cpuSeconds(proc.pid)) - before;
    account.bytes += bytes;
    await this.discard(result);
    return result;
  }

  async notePhase(name) {
    this.phaseMemory[name] = { server: await memory(this.server.pid), baseline: await memory(this.baseline.pid) };
  }

  /** Alternates which side goes first from run to run, so drift (page cache, writeback) hits both alike. */
  async paired(runs, serverWork, baselineWork) {
    const out = { server: [], baseline: [] };
    for (let r = 0; r < runs; r++) {
      if (r % 2 === 0) {
        out.server.push(await serverWork(r));
        out.baseline.push(await baselineWork(r));
      } else {
        out.baseline.push(await baselineWork(r));
        out.server.push(await serverWork(r));
      }
    }
    return out;
  }

  // --- the measurements -----------------------------------------------------------------------

  async warmUp() {
    await this.notePhase('idle');
    progress('warm-up (not measured)');
    const { warmupSize } = this.p;
    for (const chunkSize of [MiB, 64 * KiB]) {
      const size = chunkSize === MiB ? warmupSize : Math.min(warmupSize, 2 * MiB);
      await this.discard(await this.serverUpload({ start: 0, size, chunkSize, label: 'warmup' }));
      await this.discard(await this.baselineUpload({ start: 0, size, chunkSize, label: 'warmup' }));
    }
    await this.notePhase('warmup');
  }

  async sequential() {
    const { seqSize, chunkSizes } = this.p;
    const results = [];
    for (const chunkSize of chunkSizes) {
      progress(`sequential ${sizeLabel(seqSize)} in ${sizeLabel(chunkSize)} chunks × ${this.options.runs} runs`);
      const cpu = { server: { cpuSeconds: 0, bytes: 0 }, baseline: { cpuSeconds: 0, bytes: 0 } };
      const spec = { start: 0, size: seqSize, chunkSize, label: `seq${chunkSize / MiB}m` };
      const runs = await this.paired(
        this.options.runs,
        () => this.metered(this.server, cpu.server, seqSize, () => this.serverUpload(spec)),
        () => this.metered(this.baseline, cpu.baseline, seqSize, () => this.baselineUpload(spec)),
      );
      const server = median(runs.server.filter((r) => r.ok).map((r) => r.mbps));
      const baseline = median(runs.baseline.filter((r) => r.ok).map((r) => r.mbps));
      const row = {
        size: seqSize,
        chunkSize,
        serverMBps: round(server, 1),
        baselineMBps: round(baseline, 1),
        ratio: server && baseline ? round(server / baseline, 3) : null,
        serverCpuSecondsPerGiB: round(cpu.server.cpuSeconds / (cpu.server.bytes / GiB), 3),
        baselineCpuSecondsPerGiB: round(cpu.baseline.cpuSeconds / (cpu.baseline.bytes / GiB), 3),
        runs,
      };
      progress(`  server ${row.serverMBps} MB/s, baseline ${row.baselineMBps} MB/s, ratio ${row.ratio}`);
      results.push(row);
    }
    await this.notePhase('sequential');
    return results;
  }

  async concurrent() {
    const { concurrency, concSize, concChunk } = this.p;
    progress(`${concurrency} concurrent uploads of ${sizeLabel(concSize)} in ${sizeLabel(concChunk)} chunks × ${this.options.runs} runs`);
    const total = concurrency * concSize;
    const cpu = { server: { cpuSeconds: 0, bytes: 0 }, baseline: { cpuSeconds: 0, bytes: 0 } };
    const together = async (upload) => {
      const t0 = performance.now();
      const uploads = await Promise.all(
        Array.from({ length: concurrency }, (_, i) => upload({ start: i * concSize, size: concSize, chunkSize: concChunk, label: `conc${i}` })),
      );
      const seconds = (performance.now() - t0) / 1000;
      const ok = uploads.every((u) => u.ok);
      return { ok, seconds, mbps: ok ? mbps(total, seconds) : null, uploads };
    };
    const runs = await this.paired(
      this.options.runs,
      () => this.metered(this.server, cpu.server, total, () => together((s) => this.serverUpload(s))),
      () => this.metered(this.baseline, cpu.baseline, total, () => together((s) => this.baselineUpload(s))),
    );
    const server = median(runs.server.filter((r) => r.ok).map((r) => r.mbps));
    const baseline = median(runs.baseline.filter((r) => r.ok).map((r) => r.mbps));
    await this.notePhase('concurrent');
    const result = {
      concurrency,
      size: concSize,
      chunkSize: concChunk,
      serverMBps: round(server, 1),
      baselineMBps: round(baseline, 1),
      ratio: server && baseline ? round(server / baseline, 3) : null,
      serverCpuSecondsPerGiB: round(cpu.server.cpuSeconds / (cpu.server.bytes / GiB), 3),
      baselineCpuSecondsPerGiB: round(cpu.baseline.cpuSeconds / (cpu.baseline.bytes / GiB), 3),
      runs,
    };
    progress(`  server ${result.serverMBps} MB/s, baseline ${result.baselineMBps} MB/s, ratio ${result.ratio}`);
    return result;
  }

  /**
   * completeUpload latency by file size, in rounds that take every size in turn, so that whatever
   * else the machine does at the time weighs on all sizes alike.
   */
  async completeLatency() {
    const { completeSizes, completeRounds, completeChunk } = this.p;
    progress(`completeUpload latency for ${completeSizes.map(sizeLabel).join(', ')} files, ${completeRounds} rounds`);
    const samples = new Map(completeSizes.map((size) => [size, []]));
    for (let round = 0; round < completeRounds; round++) {
      for (const size of completeSizes) {
        const run = await this.serverUpload({ start: 0, size, chunkSize: Math.min(completeChunk, size), label: `complete${size / MiB}m` });
        await this.discard(run);
        if (run.ok) samples.get(size).push(run.completeMs);
      }
    }
    const rows = completeSizes.map((size) => latencyRow(size, samples.get(size)));
    for (const row of rows) progress(`  ${sizeLabel(row.size)}: median ${row.medianMs} ms, max ${row.maxMs} ms (${row.samples} samples)`);
    await this.notePhase('complete');
    return rows;
  }

  async smallChunks() {
    const { smallChunk, smallSize } = this.p;
    const chunks = Math.ceil(smallSize / smallChunk);
    progress(`per-request overhead: ${sizeLabel(smallSize)} in ${chunks} chunks of ${sizeLabel(smallChunk)} × ${this.options.runs} runs`);
    const latencies = { server: [], baseline: [] };
    const cpu = { server: { cpuSeconds: 0, bytes: 0 }, baseline: { cpuSeconds: 0, bytes: 0 } };
    const spec = { start: 0, size: smallSize, chunkSize: smallChunk, label: 'small' };
    const runs = await this.paired(
      this.options.runs,
      () => this.metered(this.server, cpu.server, smallSize, () => this.serverUpload({ ...spec, latencies: latencies.server })),
      () => this.metered(this.baseline, cpu.baseline, smallSize, () => this.baselineUpload({ ...spec, latencies: latencies.baseline })),
    );
    const rate = (list) => median(list.filter((r) => r.ok).map((r) => chunks / r.chunkSeconds));
    const server = rate(runs.server);
    const baseline = rate(runs.baseline);
    await this.notePhase('smallChunks');
    const result = {
      size: smallSize,
      chunkSize: smallChunk,
      chunks,
      serverChunksPerSecond: round(server, 0),
      baselineChunksPerSecond: round(baseline, 0),
      ratio: server && baseline ? round(server / baseline, 3) : null,
      serverLatencyMs: { p50: round(percentile(latencies.server, 50)), p99: round(percentile(latencies.server, 99)) },
      baselineLatencyMs: { p50: round(percentile(latencies.baseline, 50)), p99: round(percentile(latencies.baseline, 99)) },
      serverCpuMsPerChunk: round((cpu.server.cpuSeconds * 1000) / (cpu.server.bytes / smallChunk), 3),
      baselineCpuMsPerChunk: round((cpu.baseline.cpuSeconds * 1000) / (cpu.baseline.bytes / smallChunk), 3),
      runs: { server: runs.server.map(({ ok, chunkSeconds, error }) => ({ ok, chunkSeconds, error })), baseline: runs.baseline.map(({ ok, chunkSeconds, error }) => ({ ok, chunkSeconds, error })) },
    };
    progress(`  server ${result.serverChunksPerSecond} chunks/s, baseline ${result.baselineChunksPerSecond} chunks/s, ratio ${result.ratio}`);
    return result;
  }

  async resources() {
    const [server, baseline] = [await memory(this.server.pid), await memory(this.baseline.pid)];
    const [serverCpu, baselineCpu] = [await cpuSeconds(this.server.pid), await cpuSeconds(this.baseline.pid)];
    return {
      server: { peakRssMiB: round(server.peakRss / MiB, 1), rssAtEndMiB: round(server.rss / MiB, 1), cpuSecondsTotal: round(serverCpu, 2) },
      baseline: { peakRssMiB: round(baseline.peakRss / MiB, 1), rssAtEndMiB: round(baseline.rss / MiB, 1), cpuSecondsTotal: round(baselineCpu, 2) },
      peakRssMiBAfterPhase: Object.fromEntries(
        Object.entries(this.phaseMemory).map(([phase, m]) => [phase, { server: round(m.server.peakRss / MiB, 1), baseline: round(m.baseline.peakRss / MiB, 1) }]),
      ),
    };
  }

  async run() {
    const clientCpu0 = process.cpuUsage();
    const machine0 = await machineCpu();
    const [server0, baseline0] = [await cpuSeconds(this.server.pid), await cpuSeconds(this.baseline.pid)];
    await this.warmUp();
    const sequential = await this.sequential();
    const concurrent = await this.concurrent();
    const completeUpload = await this.completeLatency();
    const smallChunks = await this.smallChunks();
    const sdk = await sdkVsCurl(this, progress).catch((err) => {
      this.failures.push({ target: 'sdk-vs-curl', label: 'sdk-vs-curl', size: 0, chunkSize: 0, error: err.message });
      return { error: err.message };
    });
    const resources = await this.resources();
    const clientCpu = process.cpuUsage(clientCpu0);
    resources.client = { cpuSecondsTotal: round((clientCpu.user + clientCpu.system) / 1e6, 2) };
    // CPU time the rest of the machine used while we measured: on a shared box, the noise floor.
    const machine1 = await machineCpu();
    const serverCpu = (await cpuSeconds(this.server.pid)) - server0;
    const baselineCpu = (await cpuSeconds(this.baseline.pid)) - baseline0;
    resources.server.cpuSecondsMeasuring = round(serverCpu, 2);
    resources.baseline.cpuSecondsMeasuring = round(baselineCpu, 2);
    const ours = serverCpu + baselineCpu + (clientCpu.user + clientCpu.system) / 1e6;
    const wall = (machine1.totalSeconds - machine0.totalSeconds) / os.cpus().length;
    resources.machine = {
      wallSeconds: round(wall, 1),
      busyShare: round((machine1.busySeconds - machine0.busySeconds) / (machine1.totalSeconds - machine0.totalSeconds), 3),
      otherProcessesCpuSeconds: round(machine1.busySeconds - machine0.busySeconds - ours, 1),
    };
    return { sequential, concurrent, completeUpload, smallChunks, sdkVsCurl: sdk, resources };
  }
}

function latencyRow(size, samples) {
  return {
    size,
    samples: samples.length,
    medianMs: round(median(samples), 1),
    minMs: round(samples.length ? Math.min(...samples) : null, 1),
    maxMs: round(samples.length ? Math.max(...samples) : null, 1),
    allMs: samples.map((s) => round(s, 1)),
  };
}

async function withPg(url, work) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

function targets(results) {
  const seq = (size) => results.sequential.find((r) => r.chunkSize === size);
  const lat = results.completeUpload;
  const latencyRatio = lat.at(-1).medianMs != null && lat[0].medianMs ? lat.at(-1).medianMs / lat[0].medianMs : null;
  const check = (name, value, goal, met) => ({ name, value: round(value, 3), goal, met: value == null ? false : met(value) });
  return [
    check('sequential 8 MiB chunks: server / baseline', seq(8 * MiB)?.ratio, '≥ 0.8', (v) => v >= 0.8),
    check('sequential 1 MiB chunks: server / baseline', seq(1 * MiB)?.ratio, '≥ 0.6', (v) => v >= 0.6),
    check(`${results.concurrent.concurrency} concurrent uploads: server / baseline`, results.concurrent.ratio, '≥ 0.8', (v) => v >= 0.8),
    check(`completeUpload ${sizeLabel(lat.at(-1).size)} / ${sizeLabel(lat[0].size)} (median latency)`, latencyRatio, '≤ 2', (v) => v <= 2),
    check('server peak RSS (MiB)', results.resources.server.peakRssMiB, '< 150', (v) => v < 150),
  ];
}

// --- output ----------------------------------------------------------------------------------

function table(headers, rows, align) {
  const cells = [headers, ...rows].map((r) => r.map((c) => (c == null ? '—' : String(c))));
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (align?.[i] === 'l' ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

function report(out) {
  const { meta, results } = out;
  const f1 = (x) => (x == null ? null : x.toFixed(1));
  const lines = [];
  lines.push(
    `Upload benchmark (${meta.profile}) ${meta.date} — node ${meta.node}, ${meta.cpus} × ${meta.cpuModel}, ${meta.database}, ` +
      `CHUNK_FSYNC=${meta.chunkFsync} (baseline fsyncs alike: ${meta.chunkFsync}), commit ${meta.commit ?? '?'}`,
  );
  lines.push(`Load average (1 min) at start ${meta.loadAverage.start}, at end ${meta.loadAverage.end}, on ${meta.cpus} CPUs${Math.max(meta.loadAverage.start, meta.loadAverage.end) > meta.cpus ? ': the machine was busy with other work, expect noise' : ''}.`);
  lines.push('MB/s = 10^6 bytes/s. Server times are end to end: startUpload → every chunk → completeUpload (md5 verified).');
  lines.push('');
  lines.push(`Sequential upload of ${sizeLabel(results.sequential[0].size)}, median of ${meta.runs}`);
  lines.push(
    table(
      ['chunk', 'server MB/s', 'baseline MB/s', 'ratio', 'server CPU s/GiB', 'baseline CPU s/GiB'],
      results.sequential.map((r) => [sizeLabel(r.chunkSize), f1(r.serverMBps), f1(r.baselineMBps), r.ratio?.toFixed(2), r.serverCpuSecondsPerGiB?.toFixed(2), r.baselineCpuSecondsPerGiB?.toFixed(2)]),
      ['l'],
    ),
  );
  const c = results.concurrent;
  lines.push('');
  lines.push(`${c.concurrency} concurrent uploads of ${sizeLabel(c.size)}, ${sizeLabel(c.chunkSize)} chunks, aggregate, median of ${meta.runs}`);
  lines.push(
    table(
      ['', 'server MB/s', 'baseline MB/s', 'ratio', 'server CPU s/GiB', 'baseline CPU s/GiB'],
      [['aggregate', f1(c.serverMBps), f1(c.baselineMBps), c.ratio?.toFixed(2), c.serverCpuSecondsPerGiB?.toFixed(2), c.baselineCpuSecondsPerGiB?.toFixed(2)]],
      ['l'],
    ),
  );
  const s = results.smallChunks;
  lines.push('');
  lines.push(`Per-request overhead: ${sizeLabel(s.size)} in ${s.chunks} chunks of ${sizeLabel(s.chunkSize)}, median of ${meta.runs}`);
  lines.push(
    table(
      ['', 'chunks/s', 'p50 ms', 'p99 ms', 'CPU ms/chunk'],
      [
        ['server', s.serverChunksPerSecond, s.serverLatencyMs.p50, s.serverLatencyMs.p99, s.serverCpuMsPerChunk],
        ['baseline', s.baselineChunksPerSecond, s.baselineLatencyMs.p50, s.baselineLatencyMs.p99, s.baselineCpuMsPerChunk],
        ['ratio', s.ratio?.toFixed(2), null, null, null],
      ],
      ['l'],
    ),
  );
  lines.push('');
  lines.push('completeUpload latency (ms)');
  lines.push(
    table(
      ['file', 'samples', 'median', 'min', 'max'],
      results.completeUpload.map((r) => [sizeLabel(r.size), r.samples, f1(r.medianMs), f1(r.minMs), f1(r.maxMs)]),
      ['l'],
    ),
  );
  const res = results.resources;
  lines.push('');
  lines.push(
    `Peak RSS (VmHWM): server ${res.server.peakRssMiB} MiB (${res.peakRssMiBAfterPhase.idle?.server} MiB already after start-up and login), ` +
      `baseline ${res.baseline.peakRssMiB} MiB.`,
  );
  lines.push(
    `CPU while measuring (${res.machine.wallSeconds} s): server ${res.server.cpuSecondsMeasuring} s, baseline ${res.baseline.cpuSecondsMeasuring} s, ` +
      `bench client ${res.client.cpuSecondsTotal} s, other processes on the machine ${res.machine.otherProcessesCpuSeconds} s; ` +
      `the machine's CPUs were ${Math.round(res.machine.busyShare * 100)}% busy.`,
  );
  lines.push('');
  lines.push('Targets (information)');
  lines.push(table(['', 'value', 'goal', 'met'], out.targets.map((t) => [t.name, t.value, t.goal, t.met ? 'yes' : 'NO']), ['l']));
  if (out.failures.length) {
    lines.push('');
    lines.push(`FAILED RUNS (${out.failures.length}): excluded from the medians`);
    for (const f of out.failures) lines.push(`  ${f.target} ${f.label} (${sizeLabel(f.size)}, ${sizeLabel(f.chunkSize)} chunks): ${f.error}`);
  }
  return lines.join('\n');
}

function gitCommit() {
  const out = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  if (out.status !== 0) return null;
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' }).stdout?.trim();
  return out.stdout.trim() + (dirty ? '+dirty-src' : '');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const options = parseOptions();
  const bench = new Bench(options);
  let interrupted = false;
  const onSignal = (signal) => {
    if (interrupted) return;
    interrupted = true;
    progress(`${signal}: stopping the servers and cleaning up`);
    bench.tearDown().finally(() => process.exit(130));
    // (the measuring code now fails against the stopped servers; main() waits for the same tearDown)
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let out;
  try {
    await bench.setUp();
    const results = await bench.run();
    out = {
      meta: {
        date: new Date().toISOString(),
        profile: options.profileName,
        runs: options.runs,
        node: process.version,
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model?.trim(),
        memoryGiB: round(os.totalmem() / GiB, 1),
        database: bench.databaseLabel,
        chunkFsync: bench.fsync,
        serverEnv: bench.serverEnv,
        commit: gitCommit(),
        seconds: round((performance.now() - started) / 1000, 1),
        // Other work on the machine skews every figure: the 1-minute load average at start and end.
        loadAverage: { start: round(loadAtStart, 2), end: round(os.loadavg()[0], 2) },
        tmpDir: options.keep ? bench.tmp : undefined,
      },
      results,
      failures: bench.failures,
    };
    if (!bench.server.alive) bench.failures.push({ target: 'server', label: 'process', size: 0, chunkSize: 0, error: 'the server died during the bench' });
    out.targets = targets(results);
    if (bench.failures.length) bench.keepLogs = true;
  } catch (err) {
    if (interrupted) await new Promise(() => {}); // the signal handler exits once cleaned up
    bench.keepLogs = true;
    throw err;
  } finally {
    await bench.tearDown();
  }

  await mkdir(path.dirname(options.out), { recursive: true });
  await writeFile(options.out, JSON.stringify(out, null, 2) + '\n');
  console.log(report(out));
  console.log(`\nJSON: ${path.relative(process.cwd(), options.out) || options.out}  (${out.meta.seconds} s)`);
  if (out.failures.length) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
