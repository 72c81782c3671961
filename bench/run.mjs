#!/usr/bin/env node
// The upload benchmark (npm run bench): the real server, started as its own process, over its
// GraphQL and its tus path, against two minimal node:http baselines (bench/baseline-server.mjs:
// raw-http, and raw-safe, which also hashes and fsyncs) and @tus/server as a reference
// (bench/tus-reference-server.mjs), all driven by the same client over loopback.
// Run `node bench/run.mjs --help` for the options. Not part of `npm test`.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { PARTS_IN_FLIGHT, graphqlPartsUpload, graphqlUpload, rawUpload, tusUpload, verifyFiled, verifyStored } from './lib/drivers.mjs';
import { BaselineApi, GraphQLApi, HttpClient, TusApi } from './lib/http-client.mjs';
import { cpuSeconds, freePort, machineCpu, memory, startProcess, waitHealthy } from './lib/processes.mjs';
import { withPg } from './lib/pg.mjs';
import { GiB, KiB, MiB, TARGETS, report, requestLabel, sizeLabel } from './lib/report.mjs';
import { generateSource, rangeKey } from './lib/source.mjs';
import { sdkVsCurl } from './lib/sdk-vs-curl.mjs';
import { directVsProxied } from './lib/direct.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SERVER_MAIN = path.join(ROOT, 'dist/src/main.js');
const BASELINE_MAIN = path.join(ROOT, 'bench/baseline-server.mjs');
const TUS_REFERENCE_MAIN = path.join(ROOT, 'bench/tus-reference-server.mjs');
const LINK_PROXY_MAIN = path.join(ROOT, 'bench/link-proxy.mjs');
/** A tus chunk size: the whole file in one PATCH (tus-js-client's default chunkSize). */
const WHOLE = Infinity;
/**
 * The targets that send one request at a time per upload. The concurrent and per-request
 * scenarios take these only: graphql-parts keeps PARTS_IN_FLIGHT requests per upload in flight,
 * so 4 uploads of it would be 16 streams against the others' 4, and its 64 KiB "requests per
 * second" would measure the pool, not a request's cost.
 */
const ONE_STREAM_TARGETS = Object.keys(TARGETS).filter((t) => t !== 'graphql-parts');

const HELP = `Usage: npm run bench -- [options]      (or: node bench/run.mjs [options] after npm run build)

  --quick              a small variant (64 MiB instead of 512 MiB, ...)
  --embedded           the server on its embedded PostgreSQL (PGlite) instead of a fresh
                       database bench_<random> on --database-url (dropped at the end)
  --database-url URL   PostgreSQL to create the bench database on
                       (default postgres://postgres@127.0.0.1:5432/postgres)
  --fsync true|false   CHUNK_FSYNC for the server, and fsync before answering for raw-safe
                       (default: the server's own default; raw-http never fsyncs)
  --runs N             runs per sequential / concurrent / small-chunk measurement (default 3)
  --log-level LEVEL    the server's LOG_LEVEL (default: the server's own default)
  --server-node-args="ARGS"  extra node flags for the server (note the =), e.g.
                       --server-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"
  --env KEY=VALUE      more environment for the server (repeatable), e.g. --env BODY_TIMEOUT=120
  --rtt MS             also measure over a slow link: a proxy (bench/link-proxy.mjs) in front of
                       each server adds MS of round-trip time and caps the bandwidth (--rate)
  --rate MBIT          the link's bandwidth in Mbit/s, each direction (default 1000; needs --rtt)
  --link-only          with --rtt: measure only over the link
  --skip-sdk           leave out the SDK-vs-curl comparison (about 40 s)
  --out FILE           where to write the JSON (default bench/results/latest.json)
  --keep               keep the temporary directory (source file, data, server logs)
  --s3-endpoint URL    also measure the server's CPU per GiB for a direct upload to that
                       S3-compatible store beside the proxied path (credentials: $BENCH_S3_ACCESS_KEY_ID,
                       $BENCH_S3_SECRET_ACCESS_KEY, default Swift's test:tester / testing)
  --help
`;

const PROFILES = {
  full: {
    seqSize: 512 * MiB,
    chunkSizes: [1 * MiB, 8 * MiB, 32 * MiB],
    partSizes: [8 * MiB],
    tusChunkSizes: [8 * MiB, WHOLE],
    concurrency: 4,
    concSize: 128 * MiB,
    concChunk: 8 * MiB,
    completeSizes: [1 * MiB, 64 * MiB, 512 * MiB],
    completeRounds: 5,
    completeChunk: 8 * MiB,
    smallChunk: 64 * KiB,
    smallSize: 16 * MiB,
    warmupSize: 16 * MiB,
    linkSize: 1 * GiB,
  },
  quick: {
    seqSize: 64 * MiB,
    chunkSizes: [1 * MiB, 8 * MiB, 32 * MiB],
    partSizes: [8 * MiB],
    tusChunkSizes: [8 * MiB, WHOLE],
    concurrency: 4,
    concSize: 16 * MiB,
    concChunk: 8 * MiB,
    completeSizes: [1 * MiB, 16 * MiB, 64 * MiB],
    completeRounds: 3,
    completeChunk: 8 * MiB,
    smallChunk: 64 * KiB,
    smallSize: 4 * MiB,
    warmupSize: 8 * MiB,
    linkSize: 128 * MiB,
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
      rtt: { type: 'string' },
      rate: { type: 'string' },
      'link-only': { type: 'boolean', default: false },
      'skip-sdk': { type: 'boolean', default: false },
      's3-endpoint': { type: 'string' },
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
  const link = values.rtt === undefined ? undefined : { rttMs: Number(values.rtt), rateMbit: Number(values.rate ?? 1000) };
  if (link && !(link.rttMs >= 0 && link.rateMbit > 0)) throw new Error('--rtt takes milliseconds ≥ 0 and --rate Mbit/s > 0');
  if (!link && (values.rate !== undefined || values['link-only'])) throw new Error('--rate and --link-only need --rtt');
  const extraEnv = {};
  for (const pair of values.env) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new Error(`--env takes KEY=VALUE, not ${JSON.stringify(pair)}`);
    extraEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { ...values, runs, link, extraEnv, profileName: values.quick ? 'quick' : 'full', profile: PROFILES[values.quick ? 'quick' : 'full'] };
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
    /** Process name (PROCESSES in lib/report.mjs) -> its handle. */
    this.procs = {};
  }

  async setUp() {
    if (!existsSync(SERVER_MAIN)) throw new Error(`${SERVER_MAIN} is missing: build first (npm run build), or use npm run bench`);
    this.tmp = await mkdtemp(path.join(os.tmpdir(), 'upload-bench-'));
    this.cleanups.push(async () => {
      if (this.options.keep) return progress(`kept ${this.tmp}`);
      if (!this.keepLogs) return rm(this.tmp, { recursive: true, force: true });
      // After a failure: the logs stay for a look, the bulky data goes.
      for (const bulky of ['source.bin', 'server-data', 'raw-http-data', 'raw-safe-data', 'tus-ref-data']) {
        await rm(path.join(this.tmp, bulky), { recursive: true, force: true });
      }
      progress(`server and baseline logs kept in ${this.tmp}`);
    });
    this.fsync = serverFsync(this.tmp, this.options.fsync ?? this.options.extraEnv.CHUNK_FSYNC);

    // One random source file; every upload is a byte range of it, with its md5 known up front.
    const p = this.p;
    const linkSize = this.options.link ? p.linkSize : 0;
    this.sourceSize = Math.max(p.seqSize, p.concurrency * p.concSize, ...p.completeSizes, p.smallSize, p.warmupSize, linkSize);
    this.source = path.join(this.tmp, 'source.bin');
    const ranges = [
      { start: 0, length: p.seqSize },
      ...Array.from({ length: p.concurrency }, (_, i) => ({ start: i * p.concSize, length: p.concSize })),
      ...p.completeSizes.map((size) => ({ start: 0, length: size })),
      { start: 0, length: p.smallSize },
      { start: 0, length: p.warmupSize },
      { start: 0, length: Math.min(p.warmupSize, 2 * MiB) },
      ...(linkSize ? [{ start: 0, length: linkSize }] : []),
    ];
    progress(`generating ${sizeLabel(this.sourceSize)} of random data in ${this.source}`);
    this.sums = await generateSource(this.source, this.sourceSize, ranges);

    // raw-http: nothing but the write. raw-safe: our guarantees' least cost, md5 and (as the server does) fsync.
    // Started side by side; all settle before a failure is thrown, so tearDown finds every process.
    const starts = await Promise.allSettled([
      this.startServer(),
      this.startBaseline('raw-http', { FSYNC: 'false', MD5: 'false' }),
      this.startBaseline('raw-safe', { FSYNC: String(this.fsync), MD5: 'true' }),
      this.startTusReference(),
    ]);
    const failed = starts.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    this.raw = { 'raw-http': starts[1].value, 'raw-safe': starts[2].value };
    this.apis = { graphql: this.api, tus: this.tusApi, 'tus-ref': this.tusRefApi, raw: this.raw };
  }

  /** A bench/link-proxy.mjs process in front of `targetUrl`; resolves with a client through it. */
  async startLink(name, targetUrl) {
    const port = await freePort();
    const { rttMs, rateMbit } = this.options.link;
    const env = { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1', TARGET_PORT: new URL(targetUrl).port, RTT_MS: String(rttMs), RATE_MBIT: String(rateMbit) };
    const proc = startProcess(`link-${name}`, [LINK_PROXY_MAIN], env, path.join(this.tmp, `link-${name}.log`));
    this.cleanups.unshift(() => proc.stop());
    const http = new HttpClient(`http://127.0.0.1:${port}${new URL(targetUrl).pathname}`);
    this.cleanups.unshift(() => http.close());
    await waitHealthy(proc, `${http.base}`, { ok: (status) => status > 0 });
    return http;
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
    const server = startProcess('server', ['--expose-gc', ...nodeArgs, SERVER_MAIN], env, path.join(this.tmp, 'server.log'));
    this.procs.server = server;
    this.cleanups.unshift(() => server.stop());
    this.serverUrl = `http://127.0.0.1:${port}`;
    progress(`starting the server (${this.databaseLabel}, CHUNK_FSYNC=${this.fsync}) on ${this.serverUrl}, pid ${server.pid}`);
    await waitHealthy(server, `${this.serverUrl}/healthz`);
    this.serverHttp = new HttpClient(this.serverUrl);
    this.api = await new GraphQLApi(this.serverHttp).login(this.admin.username, this.admin.password);
    this.tusApi = new TusApi(this.serverHttp, { path: '/tus/', token: this.api.token });
  }

  /** A bench/baseline-server.mjs process with `settings` (FSYNC, MD5); resolves with what rawUpload needs. */
  async startBaseline(name, settings) {
    const port = await freePort();
    const dir = path.join(this.tmp, `${name}-data`);
    await mkdir(dir, { recursive: true });
    const env = { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1', DIR: dir, ...settings };
    const proc = startProcess(name, [BASELINE_MAIN], env, path.join(this.tmp, `${name}.log`));
    this.procs[name] = proc;
    this.cleanups.unshift(() => proc.stop());
    const http = new HttpClient(`http://127.0.0.1:${port}`);
    this.cleanups.unshift(() => http.close());
    await waitHealthy(proc, `${http.base}`, { ok: (status) => status > 0 });
    return { api: new BaselineApi(http), dir };
  }

  async startTusReference() {
    const port = await freePort();
    this.tusRefDir = path.join(this.tmp, 'tus-ref-data');
    await mkdir(this.tusRefDir, { recursive: true });
    const env = { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1', DIR: this.tusRefDir };
    const proc = startProcess('tus-ref', [TUS_REFERENCE_MAIN], env, path.join(this.tmp, 'tus-ref.log'));
    this.procs['tus-ref'] = proc;
    this.cleanups.unshift(() => proc.stop());
    const http = new HttpClient(`http://127.0.0.1:${port}`);
    this.cleanups.unshift(() => http.close());
    await waitHealthy(proc, `${http.base}files/`, { ok: (status) => status > 0 });
    this.tusRefApi = new TusApi(http, { path: '/files/' });
  }

  /** Stops every process, drops the database, removes the temporary files; once, however often called. */
  tearDown() {
    this.tearingDown ??= (async () => {
      this.serverHttp?.close();
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

  // --- one upload -----------------------------------------------------------------------------

  /**
   * One upload of the source range { start, size } to `target` (a TARGETS name), in requests of
   * `chunkSize` bytes (WHOLE: one request), timed and checked; a failure is recorded, not thrown.
   */
  async upload(target, spec, apis = this.apis) {
    const md5 = this.sums.get(rangeKey(spec.start, spec.size));
    const run = { ok: false, size: spec.size, chunkSize: Math.min(spec.chunkSize, spec.size) };
    try {
      const { source } = this;
      if (target === 'graphql') await graphqlUpload({ api: apis.graphql, source, md5 }, spec, run);
      else if (target === 'graphql-parts') await graphqlPartsUpload({ api: apis.graphql, source, md5 }, spec, run);
      else if (target === 'tus') await tusUpload({ api: apis.tus, source, verify: verifyFiled(this.api, md5, spec.size) }, spec, run);
      else if (target === 'tus-ref') await tusUpload({ api: apis['tus-ref'], source, verify: verifyStored(this.tusRefDir, spec.size) }, spec, run);
      else await rawUpload({ ...apis.raw[target], source, md5 }, spec, run);
      Object.assign(run, { ok: true, mbps: mbps(spec.size, run.seconds) });
    } catch (err) {
      run.error = err.message;
      this.failures.push({ target, label: spec.label, size: spec.size, chunkSize: run.chunkSize, error: err.message });
      progress(`  FAILED ${target} ${spec.label}: ${err.message}`);
    }
    return run;
  }

  /** Deletes what uploads stored (File on our server, files of the others), outside every measurement. */
  async discard(run) {
    for (const r of run.uploads ?? [run]) {
      if (r.fileId) await this.api.deleteFile(r.fileId).catch((err) => progress(`  could not delete file ${r.fileId}: ${err.message}`));
      for (const file of r.files ?? []) await rm(file, { force: true });
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
    // A process gone mid-run (it crashed, or something else on the machine signalled it) ends
    // the bench here, with its name and how it ended rather than a missing /proc entry.
    for (const proc of Object.values(this.procs)) {
      if (!proc.alive) {
        const { exitCode, signalCode } = proc.child;
        throw new Error(`the ${proc.name} process exited during ${name} (${signalCode ? `signal ${signalCode}` : `exit code ${exitCode}`}); see ${proc.logFile}`);
      }
    }
    this.phaseMemory[name] = Object.fromEntries(await Promise.all(Object.entries(this.procs).map(async ([n, proc]) => [n, await memory(proc.pid)])));
  }

  /**
   * `--runs` metered runs of `work(target)` for every one of `targets`, the order rotating from
   * run to run (with two, they alternate) so that drift (page cache, writeback, the machine's
   * other work) hits all alike. Resolves with { target: { runs, cpu } }.
   */
  async rotated(targets, bytes, work) {
    const out = Object.fromEntries(targets.map((t) => [t, { runs: [], cpu: { cpuSeconds: 0, bytes: 0 } }]));
    for (let r = 0; r < this.options.runs; r++) {
      for (let i = 0; i < targets.length; i++) {
        const target = targets[(r + i) % targets.length];
        out[target].runs.push(await this.metered(this.procs[TARGETS[target].process], out[target].cpu, bytes, () => work(target)));
      }
    }
    return out;
  }

  /**
   * Each target's median `rate` (of its good runs) and its ratio to raw-http's and raw-safe's,
   * plus `more(measured, target)` (CPU and such), in TARGETS order.
   */
  summarize(measured, rate, rateName, digits, more) {
    const medians = Object.fromEntries(Object.entries(measured).map(([t, m]) => [t, median(m.runs.filter((r) => r.ok).map(rate))]));
    const ratio = (t, baseline) => (medians[t] && medians[baseline] ? round(medians[t] / medians[baseline], 3) : null);
    const targets = {};
    for (const t of Object.keys(TARGETS).filter((t) => t in measured)) {
      targets[t] = { [rateName]: round(medians[t], digits), vsRawHttp: ratio(t, 'raw-http'), vsRawSafe: ratio(t, 'raw-safe'), ...more(measured[t], t) };
    }
    progress(
      '  ' + Object.entries(targets).map(([t, r]) => `${t} ${r[rateName]} (${r.vsRawHttp ?? '—'}× raw-http, ${r.vsRawSafe ?? '—'}× raw-safe)`).join(', '),
    );
    return targets;
  }

  // --- the measurements -----------------------------------------------------------------------

  async warmUp() {
    await this.notePhase('idle');
    progress('warm-up (not measured)');
    const { warmupSize } = this.p;
    for (const chunkSize of [MiB, 64 * KiB]) {
      const size = chunkSize === MiB ? warmupSize : Math.min(warmupSize, 2 * MiB);
      // graphql-parts in the 1 MiB round only: that warms its spool and merge; the 64 KiB round
      // warms the per-request path it shares with graphql, so it stays cheap.
      const targets = chunkSize === MiB ? Object.keys(TARGETS) : ONE_STREAM_TARGETS;
      for (const target of targets) await this.discard(await this.upload(target, { start: 0, size, chunkSize, label: 'warmup' }));
    }
    await this.notePhase('warmup');
  }

  /**
   * The whole file at every chunk size: GraphQL at `chunkSizes`, GraphQL in parts at
   * `partSizes`, tus (ours and the reference) at `tusChunkSizes`, the baselines at all of them.
   */
  async sequential() {
    const { seqSize, chunkSizes, partSizes, tusChunkSizes } = this.p;
    const perRequest = [...new Set([...chunkSizes, ...partSizes, ...tusChunkSizes])].sort((a, b) => a - b);
    const results = [];
    for (const chunkSize of perRequest) {
      const targets = [
        ...(chunkSizes.includes(chunkSize) ? ['graphql'] : []),
        ...(partSizes.includes(chunkSize) ? ['graphql-parts'] : []),
        ...(tusChunkSizes.includes(chunkSize) ? ['tus', 'tus-ref'] : []),
        'raw-http',
        'raw-safe',
      ];
      const row = { size: seqSize, chunkSize: Math.min(chunkSize, seqSize), oneRequest: chunkSize >= seqSize };
      progress(`sequential ${sizeLabel(seqSize)}, ${requestLabel(row)} per request, × ${this.options.runs} runs: ${targets.join(', ')}`);
      const label = row.oneRequest ? 'seqwhole' : `seq${chunkSize / MiB}m`;
      const measured = await this.rotated(targets, seqSize, (target) => this.upload(target, { start: 0, size: seqSize, chunkSize, label }));
      row.targets = this.summarize(measured, (r) => r.mbps, 'MBps', 1, (m) => ({
        cpuSecondsPerGiB: round(m.cpu.cpuSeconds / (m.cpu.bytes / GiB), 3),
        runs: m.runs,
      }));
      results.push(row);
    }
    await this.notePhase('sequential');
    return results;
  }

  async concurrent() {
    const { concurrency, concSize, concChunk } = this.p;
    const targets = ONE_STREAM_TARGETS;
    progress(`${concurrency} concurrent uploads of ${sizeLabel(concSize)} in ${sizeLabel(concChunk)} requests × ${this.options.runs} runs: ${targets.join(', ')}`);
    const total = concurrency * concSize;
    const together = async (target) => {
      const t0 = performance.now();
      const uploads = await Promise.all(
        Array.from({ length: concurrency }, (_, i) => this.upload(target, { start: i * concSize, size: concSize, chunkSize: concChunk, label: `conc${i}` })),
      );
      const seconds = (performance.now() - t0) / 1000;
      const ok = uploads.every((u) => u.ok);
      return { ok, seconds, mbps: ok ? mbps(total, seconds) : null, uploads };
    };
    const measured = await this.rotated(targets, total, together);
    await this.notePhase('concurrent');
    return {
      concurrency,
      size: concSize,
      chunkSize: concChunk,
      targets: this.summarize(measured, (r) => r.mbps, 'MBps', 1, (m) => ({
        cpuSecondsPerGiB: round(m.cpu.cpuSeconds / (m.cpu.bytes / GiB), 3),
        runs: m.runs.map(({ ok, seconds, mbps }) => ({ ok, seconds, mbps })),
      })),
    };
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
        const run = await this.upload('graphql', { start: 0, size, chunkSize: Math.min(completeChunk, size), label: `complete${size / MiB}m` });
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
    const targets = ONE_STREAM_TARGETS;
    progress(`per-request overhead: ${sizeLabel(smallSize)} in ${chunks} requests of ${sizeLabel(smallChunk)} × ${this.options.runs} runs: ${targets.join(', ')}`);
    const latencies = Object.fromEntries(targets.map((t) => [t, []]));
    const measured = await this.rotated(targets, smallSize, (target) =>
      this.upload(target, { start: 0, size: smallSize, chunkSize: smallChunk, label: 'small', latencies: latencies[target] }),
    );
    await this.notePhase('smallChunks');
    return {
      size: smallSize,
      chunkSize: smallChunk,
      chunks,
      targets: this.summarize(measured, (r) => chunks / r.chunkSeconds, 'chunksPerSecond', 0, (m, target) => ({
        latencyMs: { p50: round(percentile(latencies[target], 50)), p99: round(percentile(latencies[target], 99)) },
        cpuMsPerChunk: round((m.cpu.cpuSeconds * 1000) / (m.cpu.bytes / smallChunk), 3),
        runs: m.runs.map(({ ok, chunkSeconds, error }) => ({ ok, chunkSeconds, error })),
      })),
    };
  }

  /**
   * One large file over a slow link (--rtt, --rate): our GraphQL path in 8 MiB chunks, and in
   * 8 MiB parts PARTS_IN_FLIGHT at once, one tus PATCH of the whole file (ours and
   * @tus/server), and one raw-http request of the whole file, the single stream a link allows
   * at best.
   */
  async overLink() {
    const { linkSize } = this.p;
    const { rttMs, rateMbit } = this.options.link;
    const [serverLink, rawLink, tusRefLink] = await Promise.all([
      this.startLink('server', this.serverUrl),
      this.startLink('raw-http', this.raw['raw-http'].api.http.base),
      this.startLink('tus-ref', this.tusRefApi.http.base),
    ]);
    const apis = {
      graphql: new GraphQLApi(serverLink, this.api.token),
      tus: new TusApi(serverLink, { path: '/tus/', token: this.api.token }),
      'tus-ref': new TusApi(tusRefLink, { path: '/files/' }),
      raw: { 'raw-http': { ...this.raw['raw-http'], api: new BaselineApi(rawLink) } },
    };
    const chunkSizes = { graphql: 8 * MiB, 'graphql-parts': 8 * MiB, tus: WHOLE, 'tus-ref': WHOLE, 'raw-http': WHOLE };
    const targets = Object.keys(chunkSizes);
    progress(`over a ${rttMs} ms RTT, ${rateMbit} Mbit/s link: ${sizeLabel(linkSize)} × ${this.options.runs} runs: ${targets.join(', ')}`);
    const measured = await this.rotated(targets, linkSize, (target) =>
      this.upload(target, { start: 0, size: linkSize, chunkSize: chunkSizes[target], label: 'link' }, apis),
    );
    await this.notePhase('link');
    return {
      rttMs,
      rateMbit,
      size: linkSize,
      linkMBps: round((rateMbit * 1e6) / 8 / 1e6, 1),
      chunkSizes: Object.fromEntries(targets.map((t) => [t, chunkSizes[t] === WHOLE ? null : chunkSizes[t]])),
      targets: this.summarize(measured, (r) => r.mbps, 'MBps', 1, (m) => ({
        cpuSecondsPerGiB: round(m.cpu.cpuSeconds / (m.cpu.bytes / GiB), 3),
        runs: m.runs.map(({ ok, seconds, mbps, error, completeMs, unmergedAfterParts }) => ({ ok, seconds, mbps, error, completeMs, unmergedAfterParts })),
      })),
    };
  }

  async resources() {
    const processes = {};
    for (const [name, proc] of Object.entries(this.procs)) {
      const m = await memory(proc.pid);
      processes[name] = { peakRssMiB: round(m.peakRss / MiB, 1), rssAtEndMiB: round(m.rss / MiB, 1), cpuSecondsTotal: round(await cpuSeconds(proc.pid), 2) };
    }
    return {
      processes,
      peakRssMiBAfterPhase: Object.fromEntries(
        Object.entries(this.phaseMemory).map(([phase, m]) => [phase, Object.fromEntries(Object.entries(m).map(([n, mem]) => [n, round(mem.peakRss / MiB, 1)]))]),
      ),
    };
  }

  async run() {
    const clientCpu0 = process.cpuUsage();
    const machine0 = await machineCpu();
    const cpu0 = Object.fromEntries(await Promise.all(Object.entries(this.procs).map(async ([n, proc]) => [n, await cpuSeconds(proc.pid)])));
    await this.warmUp();
    const all = !this.options['link-only'];
    const sequential = all ? await this.sequential() : undefined;
    const concurrent = all ? await this.concurrent() : undefined;
    const completeUpload = all ? await this.completeLatency() : undefined;
    const smallChunks = all ? await this.smallChunks() : undefined;
    const sdk =
      all && !this.options['skip-sdk']
        ? await sdkVsCurl(this, progress).catch((err) => {
            this.failures.push({ target: 'sdk-vs-curl', label: 'sdk-vs-curl', size: 0, chunkSize: 0, error: err.message });
            return { error: err.message };
          })
        : undefined;
    const link = this.options.link ? await this.overLink() : undefined;
    const resources = await this.resources();
    const clientCpu = process.cpuUsage(clientCpu0);
    resources.client = { cpuSecondsTotal: round((clientCpu.user + clientCpu.system) / 1e6, 2) };
    // CPU time the rest of the machine used while we measured: on a shared box, the noise floor.
    const machine1 = await machineCpu();
    let ours = (clientCpu.user + clientCpu.system) / 1e6;
    for (const [name, proc] of Object.entries(this.procs)) {
      const used = (await cpuSeconds(proc.pid)) - cpu0[name];
      resources.processes[name].cpuSecondsMeasuring = round(used, 2);
      ours += used;
    }
    const wall = (machine1.totalSeconds - machine0.totalSeconds) / os.cpus().length;
    resources.machine = {
      wallSeconds: round(wall, 1),
      busyShare: round((machine1.busySeconds - machine0.busySeconds) / (machine1.totalSeconds - machine0.totalSeconds), 3),
      otherProcessesCpuSeconds: round(machine1.busySeconds - machine0.busySeconds - ours, 1),
    };
    return { sequential, concurrent, completeUpload, smallChunks, sdkVsCurl: sdk, link, resources };
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

/**
 * The performance issue's goals: the GraphQL path against raw-safe (the same guarantees, md5 and
 * fsync, in one thread), server CPU per 1 MiB chunk, completeUpload at the largest size, peak RSS;
 * over the link, the parallel parts against the single raw stream and our sequential path.
 * raw-http's ratios are in the tables above.
 */
function targets(results, { embedded }) {
  const check = (name, value, goal, met) => ({ name, value: value == null ? null : round(value, 3), goal, met: value == null ? false : met(value) });
  const out = [];
  if (results.sequential) {
    const row = (size) => results.sequential.find((r) => r.chunkSize === size && !r.oneRequest)?.targets;
    const msPerMiBChunk = (t) => (t?.cpuSecondsPerGiB == null ? null : (t.cpuSecondsPerGiB * 1000) / 1024);
    const oneMiB = row(1 * MiB);
    const cpuOver = msPerMiBChunk(oneMiB?.graphql) != null && msPerMiBChunk(oneMiB?.['raw-safe']) != null ? msPerMiBChunk(oneMiB.graphql) - msPerMiBChunk(oneMiB['raw-safe']) : null;
    const largest = results.completeUpload.at(-1);
    out.push(
      check('sequential 8 MiB chunks: server / raw-safe', row(8 * MiB)?.graphql?.vsRawSafe, '≥ 1.15', (v) => v >= 1.15),
      check('sequential 1 MiB chunks: server / raw-safe', oneMiB?.graphql?.vsRawSafe, '≥ 0.85', (v) => v >= 0.85),
      check(`${results.concurrent.concurrency} concurrent uploads: server / raw-safe`, results.concurrent.targets.graphql?.vsRawSafe, '≥ 1.15', (v) => v >= 1.15),
      check('server CPU per 1 MiB chunk over raw-safe (ms)', cpuOver, '≤ 3', (v) => v <= 3),
      check(`completeUpload ${sizeLabel(largest.size)} (median ms)`, largest.medianMs, '≤ 20', (v) => v <= 20),
    );
  }
  if (results.link) {
    const { rttMs, rateMbit, size, targets: t } = results.link;
    const ratio = (a, b) => (t[a]?.MBps && t[b]?.MBps ? t[a].MBps / t[b].MBps : null);
    const name = `${rttMs} ms, ${rateMbit} Mbit/s, ${sizeLabel(size)}: parts`;
    out.push(
      check(`${name} / one raw stream`, ratio('graphql-parts', 'raw-http'), '≥ 0.8', (v) => v >= 0.8),
      check(`${name} / GraphQL sequential`, ratio('graphql-parts', 'graphql'), '≥ 2', (v) => v >= 2),
    );
  }
  const rssGoal = embedded ? 250 : 150;
  out.push(check(`server peak RSS (MiB, ${embedded ? 'embedded' : 'PostgreSQL'})`, results.resources.processes.server.peakRssMiB, `≤ ${rssGoal}`, (v) => v <= rssGoal));
  return out;
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
  // Output piped into something that stopped reading (`| head`): clean up as for Ctrl-C.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err) => {
      if (err.code !== 'EPIPE') throw err;
      onSignal('EPIPE');
    });
  }

  let out;
  try {
    await bench.setUp();
    const results = await bench.run();
    out = {
      meta: {
        date: new Date().toISOString(),
        profile: options.profileName,
        runs: options.runs,
        partsInFlight: PARTS_IN_FLIGHT,
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
    for (const proc of Object.values(bench.procs)) {
      if (!proc.alive) bench.failures.push({ target: proc.name, label: 'process', size: 0, chunkSize: 0, error: `${proc.name} died during the bench` });
    }
    out.targets = targets(results, options);
    if (options['s3-endpoint']) {
      out.directUploads = await directVsProxied({ root: ROOT, tmp: bench.tmp, endpoint: options['s3-endpoint'], size: options.profile.seqSize, runs: options.runs, progress });
    }
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
  if (out.directUploads) {
    const { size, proxied, direct } = out.directUploads;
    console.log(`\nS3, ${sizeLabel(size)} through the SDK — server CPU per GiB: proxied ${proxied.cpuSecondsPerGiB} s (${proxied.seconds} s per upload), direct ${direct.cpuSecondsPerGiB} s until READY, the verifying read included (${direct.seconds} s)`);
  }
  console.log(`\nJSON: ${path.relative(process.cwd(), options.out) || options.out}  (${out.meta.seconds} s)`);
  if (out.failures.length) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
