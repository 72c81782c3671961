// Runs every compiled test file with node's own test runner (the build, scripts/build.mjs, removes
// compiled files whose source is gone, so no compiled test of a renamed or deleted file is left).
// Without TEST_DATABASE_URL the servers under test use the embedded PostgreSQL; with it, a
// fresh database on that PostgreSQL server per test server.
// Files named *.serial.test.js disturb the machine (restart PostgreSQL, fill a disk): they run
// afterwards, one at a time, with nothing else running.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve('dist/test');
const only = process.argv.slice(2);
const files = readdirSync(root, { recursive: true })
  .filter((f) => f.endsWith('.test.js'))
  // A fragment picks a serial file only if it says "serial": `cli` must not start stalled-clients.serial.
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o) && (!f.endsWith('.serial.test.js') || o.includes('serial'))))
  .sort()
  .map((f) => path.join(root, f));
const serial = files.filter((f) => f.endsWith('.serial.test.js'));
const parallel = files.filter((f) => !serial.includes(f));

console.log(`Running ${files.length} test files against ${process.env.TEST_DATABASE_URL ? 'PostgreSQL at TEST_DATABASE_URL' : 'the embedded PostgreSQL'}`);
let status = 0;
for (const [group, concurrency] of [[parallel, 2], [serial, 1]]) {
  if (group.length === 0) continue;
  const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', `--test-concurrency=${concurrency}`, ...group], { stdio: 'inherit' });
  status ||= result.status ?? 1;
}
process.exit(status);
