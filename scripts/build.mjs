// The build: tsc for the server, its tests and mikro-orm.config (→ dist/), then `npm run
// build:client` (the SDK for Node, the browser page's modules, hash-wasm's browser file).
//
//   node scripts/build.mjs               build now (incremental: tsc keeps dist/.tsbuildinfo)
//   node scripts/build.mjs --if-changed  build only if an input changed since the last build
//   node scripts/build.mjs --clean       empty dist/ first, then build everything
//
// `--if-changed` is what `npm start` and `npm test` run first. tsc's own incremental check
// still takes seconds (it reads and hashes every file with the compiler loaded), so the last
// successful build leaves a fingerprint of its inputs — the content of every file under src/,
// test/ and client/, the tsconfigs, mikro-orm.config.ts, package-lock.json and this script —
// in dist/.build-fingerprint; when it still matches and the entry points are there, nothing
// runs. Content, not mtimes: a `touch` or a checkout that changes nothing does not rebuild,
// and a file deleted or renamed changes the fingerprint like any edit.
//
// tsc never deletes output, so after compiling, every compiled file in dist/ whose source is
// gone is removed: a test file deleted or renamed in test/ leaves no stale copy for
// test/run.mjs to run.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const FINGERPRINT = path.join(dist, '.build-fingerprint');
const TSBUILDINFO = path.join(dist, '.tsbuildinfo');

const INPUT_DIRS = ['src', 'test', 'client'];
const INPUT_FILES = ['tsconfig.json', 'mikro-orm.config.ts', 'package-lock.json', 'scripts/build.mjs'];
/** What `npm start`, the CLI and the browser page need; a build missing one of them is not trusted. */
const OUTPUTS = ['dist/src/main.js', 'dist/src/cli.js', 'dist/client/cli/upload-cli.js', 'public/js/web/app.js', 'public/vendor/hash-wasm/md5.umd.min.js'];
/** Compiled directories of the root build, each with its source directory. */
const COMPILED = [
  ['dist/src', 'src'],
  ['dist/test', 'test'],
  ['dist/client', 'client'],
];

const args = new Set(process.argv.slice(2));
const quiet = args.has('--quiet');
const say = (message) => quiet || console.log(`build: ${message}`);

const fingerprint = inputFingerprint();
if (args.has('--if-changed') && isUpToDate(fingerprint)) {
  say('up to date (no input changed since the last build)');
  process.exit(0);
}
if (args.has('--clean') || !outputsPresent()) {
  // Incremental tsc does not re-emit files deleted behind its back: start from nothing.
  rmSync(dist, { recursive: true, force: true });
}
rmSync(FINGERPRINT, { force: true });
say(existsSync(TSBUILDINFO) ? 'compiling what changed' : 'compiling everything');
run(process.execPath, [tscBin(), '-p', 'tsconfig.json', '--incremental', '--tsBuildInfoFile', TSBUILDINFO]);
const removed = pruneStaleOutput();
if (removed.length) say(`removed ${removed.length} compiled file(s) whose source is gone: ${removed.join(', ')}`);
run(...npm('run', '--silent', 'build:client'));
writeFileSync(FINGERPRINT, `${fingerprint}\n`);
say('done');

function run(command, commandArgs) {
  const result = spawnSync(command, commandArgs, { cwd: root, stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit' });
  if (result.status !== 0) {
    console.error(`build: ${path.basename(command)} ${commandArgs.join(' ')} failed`);
    process.exit(result.status ?? 1);
  }
}

function tscBin() {
  return path.join(root, 'node_modules/typescript/bin/tsc');
}

/** The npm that runs this script (npm sets npm_execpath), else the one on PATH. */
function npm(...npmArgs) {
  const cli = process.env.npm_execpath;
  return cli && /\.[cm]?js$/.test(cli) ? [process.execPath, [cli, ...npmArgs]] : ['npm', npmArgs];
}

function inputFingerprint() {
  const hash = createHash('sha256');
  const files = [...INPUT_DIRS.flatMap((dir) => listFiles(dir)), ...INPUT_FILES.filter((f) => existsSync(path.join(root, f)))].sort();
  for (const file of files) {
    hash.update(`${file}\0`);
    hash.update(readFileSync(path.join(root, file)));
    hash.update('\0');
  }
  return hash.digest('hex');
}

function listFiles(dir) {
  const full = path.join(root, dir);
  if (!existsSync(full)) return [];
  return readdirSync(full, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && !entry.parentPath.split(path.sep).includes('node_modules'))
    .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)));
}

function isUpToDate(current) {
  if (!outputsPresent()) return false;
  try {
    return readFileSync(FINGERPRINT, 'utf8').trim() === current;
  } catch {
    return false;
  }
}

function outputsPresent() {
  return OUTPUTS.every((f) => existsSync(path.join(root, f)));
}

/** Deletes compiled files (.js, .js.map, .d.ts) of the root build whose .ts source no longer exists. */
function pruneStaleOutput() {
  const removed = [];
  for (const [outDir, sourceDir] of COMPILED) {
    const full = path.join(root, outDir);
    if (!existsSync(full)) continue;
    for (const entry of readdirSync(full, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const compiled = path.join(entry.parentPath, entry.name);
      const stem = compiled.match(/^(.*)\.(js|js\.map|d\.ts)$/)?.[1];
      if (!stem) continue;
      const source = path.join(root, sourceDir, `${path.relative(full, stem)}.ts`);
      if (existsSync(source)) continue;
      rmSync(compiled);
      removed.push(path.relative(root, compiled));
    }
    removeEmptyDirs(full);
  }
  return removed;
}

function removeEmptyDirs(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) removeEmptyDirs(path.join(dir, entry.name));
  }
  if (readdirSync(dir).length === 0) rmdirSync(dir);
}
