#!/usr/bin/env node
// files(search:) on a large library (npm run bench:search, after npm run build): the real server
// on a fresh PostgreSQL database filled with --files rows, timing searches over GraphQL with the
// trigram index files_name_trgm and again without it. Not part of `npm test`.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { withPg } from './lib/pg.mjs';
import { freePort, startProcess, waitHealthy } from './lib/processes.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: options } = parseArgs({
  options: {
    'database-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    files: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '15' },
    keep: { type: 'boolean', default: false },
  },
});
const FILES = Number(options.files);
const RUNS = Number(options.runs);

// [label, search term]: a rare substring, a common one, one that matches nothing, and the
// longest pattern allowed of nothing but LIKE's wildcards (matched literally: no file has it).
const TERMS = [
  ['rare (1 file)', 'report-12345.'],
  ['common (~10% of files)', 'invoice'],
  ['no match', 'zzqx-nothing'],
  ['200 × "%_" characters (the limit)', '%_'.repeat(100)],
];

async function graphql(url, token, query, variables) {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timeSearches(url, token) {
  const results = {};
  for (const [label, term] of TERMS) {
    const times = [];
    let totalCount;
    for (let i = 0; i < RUNS; i++) {
      const started = performance.now();
      const data = await graphql(url, token, `query($s: String) { files(search: $s, first: 20) { totalCount edges { node { name } } } }`, { s: term });
      times.push(performance.now() - started);
      totalCount = data.files.totalCount;
    }
    results[label] = { medianMs: Number(median(times).toFixed(1)), totalCount };
  }
  return results;
}

const tmp = await mkdtemp(path.join(os.tmpdir(), 'bench-search-'));
const name = `bench_search_${randomBytes(6).toString('hex')}`;
await withPg(options['database-url'], (c) => c.query(`create database "${name}"`));
const dbUrl = new URL(options['database-url']);
dbUrl.pathname = `/${name}`;
const port = await freePort();
const admin = { username: 'bench', password: `pw-${randomBytes(12).toString('hex')}` };
const server = startProcess(
  'server',
  [path.join(ROOT, 'dist/src/main.js')],
  {
    PATH: process.env.PATH,
    NODE_ENV: 'production',
    JWT_SECRET: randomBytes(48).toString('base64url'),
    PORT: String(port),
    HOST: '127.0.0.1',
    DATA_DIR: path.join(tmp, 'data'),
    DATABASE_URL: dbUrl.toString(),
    ADMIN_USERNAME: admin.username,
    ADMIN_PASSWORD: admin.password,
    CLEANUP_INTERVAL: '0',
  },
  path.join(tmp, 'server.log'),
);
try {
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(server, `${url}/healthz`);
  const { login } = await graphql(url, undefined, `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }`, { u: admin.username, p: admin.password });
  const report = await withPg(dbUrl.toString(), async (db) => {
    const started = performance.now();
    await db.query(
      `insert into files (id, name, size, md5, uploaded_at)
       select gen_random_uuid(),
              case when g % 10 = 0 then 'invoice-' else 'report-' end || g || '.pdf',
              1, 'd41d8cd98f00b204e9800998ecf8427e', now() - g * interval '1 second'
         from generate_series(1, $1::int) g`,
      [FILES],
    );
    await db.query('analyze files');
    const insertSeconds = (performance.now() - started) / 1000;
    const [{ version }] = (await db.query('select version()')).rows;
    const withIndex = await timeSearches(url, login.token);
    await db.query('drop index files_name_trgm');
    await db.query('analyze files');
    const withoutIndex = await timeSearches(url, login.token);
    return { files: FILES, runs: RUNS, postgres: version, insertSeconds: Number(insertSeconds.toFixed(1)), withIndex, withoutIndex };
  });
  console.log(JSON.stringify(report, null, 2));
  console.log('\n| search | files found | with files_name_trgm | without |\n| --- | --- | --- | --- |');
  for (const [label] of TERMS) {
    console.log(`| ${label} | ${report.withIndex[label].totalCount} | ${report.withIndex[label].medianMs} ms | ${report.withoutIndex[label].medianMs} ms |`);
  }
} finally {
  await server.stop();
  await withPg(options['database-url'], (c) => c.query(`drop database if exists "${name}" with (force)`));
  if (!options.keep) await rm(tmp, { recursive: true, force: true });
}
