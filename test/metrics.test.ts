import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../src/config';
import { chooseLogFormat } from '../src/logger';
import { expectCode } from './helpers/assert';
import { md5, randomFile, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { eventually } from './helpers/timing';
import { startServers, type TestServer } from './helpers/server';
import { dropMidway, patch, startRaw } from './helpers/tus';
import { completeAndVerify, sendChunks } from './helpers/upload';

const METRICS_TOKEN = 'metrics-token-for-tests-0123456789';
const MiB = 1024 * 1024;

/** One scrape: every sample by `name{label="value",...}` (labels in the order the server writes them). */
type Scrape = Map<string, number>;

async function scrape(url: string, token?: string): Promise<Scrape> {
  const res = await fetch(`${url}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  assert.equal(res.status, 200, `GET /metrics: ${res.status}`);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const samples: Scrape = new Map();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** A sample's value, 0 when the series does not exist yet (a labelled counter never incremented). */
const value = (s: Scrape, series: string): number => s.get(series) ?? 0;
const delta = (before: Scrape, after: Scrape, series: string): number => value(after, series) - value(before, series);

describe(`metrics (${databaseKind})`, () => {
  let open: TestServer;
  let guarded: TestServer;
  let alice: GraphQLClient;

  before(async () => {
    // 1 MiB chunks at most, so a tus PATCH commits 1 MiB segments.
    [open, guarded] = await startServers({ MAX_CHUNK_SIZE: String(MiB) }, { METRICS_TOKEN });
    alice = await open.admin.newUser();
  });
  after(() => Promise.all([open?.close(), guarded?.close()]));

  it('counts a real upload: bytes, chunks by result, the latency histogram, completions, uploads in progress, HTTP requests', async () => {
    const bytes = randomFile(300_000);
    const before = await scrape(open.url);
    const otherBefore = await scrape(guarded.url, METRICS_TOKEN);

    const upload = await alice.start('measured.bin', bytes.length);
    assert.equal(value(await scrape(open.url), 'uploads_in_progress'), 1, 'the upload just started is in progress');
    await sendChunks(alice, upload.id, bytes, 0, 200_000, 100_000);
    // A refused chunk: counted by its result, its bytes are not.
    expectCode(await alice.uploadChunk(upload.id, 0, bytes.subarray(0, 1000)), 'OFFSET_MISMATCH');
    await sendChunks(alice, upload.id, bytes, 200_000, bytes.length, 100_000);
    const file = await completeAndVerify(alice, upload.id, bytes);
    const after = await scrape(open.url);

    assert.equal(delta(before, after, 'upload_bytes_received_total'), bytes.length);
    assert.equal(delta(before, after, 'upload_chunks_total{result="ok"}'), 3);
    assert.equal(delta(before, after, 'upload_chunks_total{result="offset_mismatch"}'), 1);
    assert.equal(delta(before, after, 'upload_chunk_duration_seconds_count'), 4, 'every chunk, refused ones too, is timed');
    assert.equal(
      delta(before, after, 'upload_chunk_duration_seconds_bucket{le="+Inf"}'),
      4,
      'the histogram has its buckets',
    );
    assert.ok(delta(before, after, 'upload_chunk_duration_seconds_sum') > 0);
    assert.equal(delta(before, after, 'uploads_completed_total'), 1);
    assert.equal(value(after, 'uploads_in_progress'), 0, 'completed: no longer in progress');

    // 1 start + 4 chunks + 1 complete, all HTTP 200 (GraphQL errors ride in a 200); the download by its route pattern.
    // A request is counted once its answer is flushed, which its client may see first: hence eventually.
    await eventually(async () => {
      const now = await scrape(open.url);
      assert.ok(delta(before, now, 'http_requests_total{route="/graphql",status="200"}') >= 6);
      assert.equal(delta(before, now, 'http_requests_total{route="/files/:id/content",status="200"}'), 1);
    });
    for (const series of after.keys()) {
      if (!series.startsWith('http_requests_total')) continue;
      assert.doesNotMatch(series, new RegExp(`${upload.id}|${file.id}`), `no id in a route label: ${series}`);
    }

    // Each server has a registry of its own: the other server in this process counted nothing.
    const otherAfter = await scrape(guarded.url, METRICS_TOKEN);
    assert.equal(delta(otherBefore, otherAfter, 'upload_bytes_received_total'), 0);
    assert.equal(delta(otherBefore, otherAfter, 'uploads_completed_total'), 0);
  });

  it('counts a tus upload too: one PATCH is one chunk, its bytes, its completion; tus routes by pattern', async () => {
    const bytes = randomFile(200_000);
    const before = await scrape(open.url);
    const id = await startRaw(alice, bytes.length, 'tus-measured.bin');
    assert.equal((await patch(alice, `${alice.url}/tus/${id}`, 0, bytes)).status, 204);
    const after = await scrape(open.url);
    assert.equal(delta(before, after, 'upload_bytes_received_total'), bytes.length);
    assert.equal(delta(before, after, 'upload_chunks_total{result="ok"}'), 1);
    assert.equal(delta(before, after, 'uploads_completed_total'), 1);
    await eventually(async () => {
      const now = await scrape(open.url);
      assert.equal(delta(before, now, 'http_requests_total{route="/tus/",status="201"}'), 1);
      assert.equal(delta(before, now, 'http_requests_total{route="/tus/:id",status="204"}'), 1);
    });
  });

  it('counts the committed segments of a tus PATCH that was cut off, as a failed chunk', async () => {
    const bytes = randomFile(3 * MiB);
    const before = await scrape(open.url);
    const id = await startRaw(alice, bytes.length, 'tus-cut.bin');
    const url = `${alice.url}/tus/${id}`;
    await dropMidway(alice, url, 0, bytes, 2 * MiB + 10);
    const offset = await eventually(async () => {
      const { offset } = await alice.getUpload(id);
      assert.equal(offset, 2 * MiB, 'two whole segments were committed');
      return offset;
    }, 10_000);
    await eventually(async () => {
      const after = await scrape(open.url);
      assert.equal(delta(before, after, 'upload_bytes_received_total'), offset, 'the bytes that stay are counted');
      assert.equal(delta(before, after, 'upload_chunks_total{result="ok"}'), 0);
    });
    assert.equal((await patch(alice, url, offset, bytes.subarray(offset))).status, 204);
    assert.equal(delta(before, await scrape(open.url), 'upload_bytes_received_total'), bytes.length, 'every byte counted once');
  });

  it('counts an aborted upload out of uploads_in_progress, and a chunk for it as upload_not_active', async () => {
    const upload = await alice.start('dropped.bin', 10);
    assert.equal(value(await scrape(open.url), 'uploads_in_progress'), 1);
    const before = await scrape(open.url);
    assert.equal((await alice.abort(upload.id)).errors, undefined);
    expectCode(await alice.uploadChunk(upload.id, 0, Buffer.from('0123456789')), 'UPLOAD_NOT_ACTIVE');
    const after = await scrape(open.url);
    assert.equal(value(after, 'uploads_in_progress'), 0);
    assert.equal(delta(before, after, 'upload_chunks_total{result="upload_not_active"}'), 1);
    assert.equal(delta(before, after, 'upload_bytes_received_total'), 0);
  });

  it('serves the default process metrics, and unknown paths under one label', async () => {
    await fetch(`${open.url}/no/such/${md5(randomFile(8))}`);
    const samples = await scrape(open.url);
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      assert.ok(samples.has(name), `${name} is served`);
    }
    assert.ok(value(samples, 'http_requests_total{route="other",status="404"}') >= 1);
  });

  it('the Grafana dashboard (ops/grafana-dashboard.json) asks only for metrics this server serves', async () => {
    const dashboard = JSON.parse(readFileSync(path.resolve(__dirname, '../../ops/grafana-dashboard.json'), 'utf8'));
    const exprs: string[] = dashboard.panels.flatMap((p: { targets?: { expr: string }[] }) => (p.targets ?? []).map((t) => t.expr));
    const names = new Set(exprs.flatMap((expr) => [...expr.matchAll(/([a-z_:][a-z0-9_:]*)\{/g)].map((m) => m[1])));
    assert.ok(names.size >= 8, `metric names found: ${[...names]}`);
    const served = new Set([...(await scrape(open.url)).keys()].map((series) => series.replace(/\{.*$/, '')));
    for (const name of names) assert.ok(served.has(name), `${name} (in the dashboard) is served`);
  });

  it('requires METRICS_TOKEN as a bearer when it is set, and nothing else will do', async () => {
    for (const [what, headers] of [
      ['no header', {}],
      ['a wrong token', { authorization: 'Bearer not-the-metrics-token-at-all' }],
      ['a user token', guarded.admin.authHeaders()],
      ['the token without "Bearer"', { authorization: METRICS_TOKEN }],
    ] as const) {
      const res = await fetch(`${guarded.url}/metrics`, { headers });
      assert.equal(res.status, 401, what);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/, what);
      const body = (await res.json()) as { errors: { extensions: { code: string } }[] };
      assert.equal(body.errors[0].extensions.code, 'UNAUTHENTICATED', what);
    }
    await scrape(guarded.url, METRICS_TOKEN);
  });

  it('validates METRICS_TOKEN and LOG_FORMAT at start-up', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return [];
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.problems;
      }
    };
    assert.match(problems({ METRICS_TOKEN: 'short' }).join(), /^METRICS_TOKEN: must be at least 16 characters/);
    assert.match(problems({ METRICS_TOKEN: 'sixteen or more but with spaces' }).join(), /^METRICS_TOKEN: must be printable ASCII/);
    assert.match(problems({ LOG_FORMAT: 'xml' }).join(), /^LOG_FORMAT: must be json or pretty/);
    assert.equal(loadConfig({ METRICS_TOKEN }).metricsToken, METRICS_TOKEN);
    assert.equal(loadConfig({}).metricsToken, undefined);
  });

  it('logs readable lines only at a terminal outside production; JSON when piped, in production, or as LOG_FORMAT says', () => {
    assert.equal(chooseLogFormat({ production: false, isTTY: true }), 'pretty');
    assert.equal(chooseLogFormat({ production: false, isTTY: false }), 'json');
    assert.equal(chooseLogFormat({ production: true, isTTY: true }), 'json');
    assert.equal(chooseLogFormat({ format: 'pretty', production: true, isTTY: false }), 'pretty');
    assert.equal(chooseLogFormat({ format: 'json', production: false, isTTY: true }), 'json');
  });
});
