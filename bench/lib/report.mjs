// The bench's text report (stdout) from the results run.mjs writes to JSON.

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const sizeLabel = (bytes) => (bytes >= MiB ? `${bytes / MiB} MiB` : `${bytes / KiB} KiB`);

/** What the bench measures, in the order the tables list them, and which process serves each. */
export const TARGETS = {
  graphql: { label: 'server, GraphQL', process: 'server' },
  'graphql-parts': { label: 'server, GraphQL parts', process: 'server' },
  tus: { label: 'server, tus', process: 'server' },
  'tus-ref': { label: '@tus/server', process: 'tus-ref' },
  'raw-http': { label: 'raw-http', process: 'raw-http' },
  'raw-safe': { label: 'raw-safe', process: 'raw-safe' },
};
export const PROCESSES = {
  server: 'server (GraphQL and tus)',
  'raw-http': 'raw-http',
  'raw-safe': 'raw-safe',
  'tus-ref': '@tus/server',
};

export function table(headers, rows, align) {
  const cells = [headers, ...rows].map((r) => r.map((c) => (c == null ? '—' : String(c))));
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (align?.[i] === 'l' ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

const f1 = (x) => (x == null ? null : x.toFixed(1));
const f2 = (x) => (x == null ? null : x.toFixed(2));
export const requestLabel = (row) => (row.oneRequest ? 'whole file' : sizeLabel(row.chunkSize));

/** Rows "target, rate, × raw-http, × raw-safe, ...more" for every target a scenario measured. */
function targetRows(targets, rate, more = () => []) {
  return Object.entries(targets).map(([name, t]) => [TARGETS[name].label, rate(t), f2(t.vsRawHttp), f2(t.vsRawSafe), ...more(t)]);
}

export function report(out) {
  const { meta, results } = out;
  const lines = [];
  lines.push(
    `Upload benchmark (${meta.profile}) ${meta.date} — node ${meta.node}, ${meta.cpus} × ${meta.cpuModel}, ${meta.database}, ` +
      `CHUNK_FSYNC=${meta.chunkFsync} (raw-safe fsyncs alike: ${meta.chunkFsync}; raw-http never), commit ${meta.commit ?? '?'}`,
  );
  lines.push(
    `Load average (1 min) at start ${meta.loadAverage.start}, at end ${meta.loadAverage.end}, on ${meta.cpus} CPUs` +
      `${Math.max(meta.loadAverage.start, meta.loadAverage.end) > meta.cpus ? ': the machine was busy with other work, expect noise' : ''}.`,
  );
  lines.push('MB/s = 10^6 bytes/s. × raw-http, × raw-safe: the rate over that baseline\'s in the same scenario, same run.');
  lines.push('server, GraphQL: startUpload → every chunk → completeUpload (md5 verified). server, tus: POST → every PATCH (filed with');
  lines.push('the right md5, checked afterwards). @tus/server: POST → every PATCH (@tus/file-store: no md5, no fsync). raw-safe: md5 + fsync.');
  lines.push(`server, GraphQL parts: startUpload with partSize = the request size → uploadPart, ${meta.partsInFlight ?? 4} at once in ascending order → completeUpload.`);
  if (results.sequential) lines.push(...loopbackSections(results, meta));
  if (results.link) lines.push(...linkSection(results.link, meta));
  const res = results.resources;
  lines.push('');
  lines.push(
    table(
      ['process', 'peak RSS MiB', 'after start-up', 'CPU s measuring'],
      Object.entries(PROCESSES).map(([name, label]) => [label, f1(res.processes[name].peakRssMiB), f1(res.peakRssMiBAfterPhase.idle?.[name]), f2(res.processes[name].cpuSecondsMeasuring)]),
      ['l'],
    ),
  );
  lines.push('(peak RSS: VmHWM; the server\'s "after start-up" includes one login)');
  lines.push(
    `CPU while measuring (${res.machine.wallSeconds} s): bench client ${res.client.cpuSecondsTotal} s, other processes on the machine ` +
      `${res.machine.otherProcessesCpuSeconds} s; the machine's CPUs were ${Math.round(res.machine.busyShare * 100)}% busy.`,
  );
  if (out.targets.length) {
    lines.push('');
    lines.push('Targets (information)');
    lines.push(table(['', 'value', 'goal', 'met'], out.targets.map((t) => [t.name, t.value, t.goal, t.met ? 'yes' : 'NO']), ['l']));
  }
  if (out.failures.length) {
    lines.push('');
    lines.push(`FAILED RUNS (${out.failures.length}): excluded from the medians`);
    for (const f of out.failures) lines.push(`  ${f.target} ${f.label} (${sizeLabel(f.size)}, ${sizeLabel(f.chunkSize)} per request): ${f.error}`);
  }
  return lines.join('\n');
}

/** Over the slow link: every target against the single raw stream and the link's own rate. */
function linkSection(link, meta) {
  const raw = link.targets['raw-http']?.MBps;
  const rows = Object.entries(link.targets).map(([name, t]) => [
    TARGETS[name].label,
    link.chunkSizes[name] == null ? 'whole file' : sizeLabel(link.chunkSizes[name]),
    f1(t.MBps),
    raw ? f2(t.MBps / raw) : null,
    f2(t.MBps / link.linkMBps),
    f2(t.cpuSecondsPerGiB),
  ]);
  return [
    '',
    `Over a link of ${link.rttMs} ms RTT and ${link.rateMbit} Mbit/s (bench/link-proxy.mjs): ${sizeLabel(link.size)}, median of ${meta.runs}`,
    table(['target', 'per request', 'MB/s', '× one raw stream', '× link rate', 'CPU s/GiB'], rows, ['l', 'l']),
    `server, GraphQL parts: ${meta.partsInFlight ?? 4} parts in flight at once; server, GraphQL: one chunk at a time, each waiting for the answer to the one before.`,
  ];
}

function loopbackSections(results, meta) {
  const lines = [];
  lines.push('');
  lines.push(`Sequential upload of ${sizeLabel(results.sequential[0].size)}, median of ${meta.runs}`);
  const seqRows = results.sequential.flatMap((row) =>
    targetRows(row.targets, (t) => f1(t.MBps), (t) => [f2(t.cpuSecondsPerGiB)]).map((r, i) => [i === 0 ? requestLabel(row) : '', ...r]),
  );
  lines.push(table(['per request', 'target', 'MB/s', '× raw-http', '× raw-safe', 'CPU s/GiB'], seqRows, ['l', 'l']));
  const c = results.concurrent;
  lines.push('');
  lines.push(`${c.concurrency} concurrent uploads of ${sizeLabel(c.size)}, ${sizeLabel(c.chunkSize)} per request, aggregate, median of ${meta.runs}`);
  lines.push(table(['target', 'MB/s', '× raw-http', '× raw-safe', 'CPU s/GiB'], targetRows(c.targets, (t) => f1(t.MBps), (t) => [f2(t.cpuSecondsPerGiB)]), ['l']));
  const s = results.smallChunks;
  lines.push('');
  lines.push(`Per-request overhead: ${sizeLabel(s.size)} in ${s.chunks} requests of ${sizeLabel(s.chunkSize)}, median of ${meta.runs}`);
  lines.push(
    table(
      ['target', 'chunks/s', '× raw-http', '× raw-safe', 'p50 ms', 'p99 ms', 'CPU ms/chunk'],
      targetRows(s.targets, (t) => t.chunksPerSecond, (t) => [t.latencyMs.p50, t.latencyMs.p99, t.cpuMsPerChunk]),
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
  return lines;
}
