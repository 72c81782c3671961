#!/usr/bin/env node
/**
 * Uploads files through the SDK with a progress bar on stderr and one JSON line per uploaded
 * file on stdout. Interrupted uploads (Ctrl-C, a lost connection, a server restart) resume
 * when the same command runs again: upload ids are remembered in --state-file.
 *
 *   upload-file --url http://127.0.0.1:4000 --username u --password p big.iso
 *   (from a checkout: node dist/client/cli/upload-cli.js ...)
 */
import { statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { JsonFileResumeStore, UploadClient, UploadError, formatBytes, isAbortError } from '../src/node.js';
import { ProgressBar } from './progress-bar.js';

const HELP = `Usage: upload-file [options] FILE...

Options:
  --url URL             the server (default: $UPLOAD_URL or http://127.0.0.1:4000)
  -u, --username NAME   log in as NAME (default: $UPLOAD_USERNAME)
  -p, --password PASS   (default: $UPLOAD_PASSWORD)
  --token TOKEN         an access token (ucs_...) or a login token instead of a
                        username and password (default: $UPLOAD_TOKEN)
  -d, --description T   the files' description
  --chunk-size SIZE     bytes per request (a chunk, or a part sent through the server),
                        e.g. 512K, 8M (default 8M; the server's maximum caps it)
  --state-file PATH     where interrupted uploads are remembered
                        (default: $XDG_STATE_HOME/chunked-upload/resume.json)
  --no-resume           start every file afresh
  --no-direct           send the bytes through the server even when it offers direct
                        uploads to object storage (by default parts go straight to the bucket)
  --parallel N          parts sent at once (default 4), to the bucket or, when the server
                        takes parallel parts, through it; 1 sends one chunk after another
  -q, --quiet           no progress bar
  -h, --help

Ctrl-C pauses: run the same command again to resume from the server's offset.
Exit status: 0 all uploaded, 1 a file failed, 2 bad usage or a missing file, 130 interrupted.`;

export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmg]?)i?b?$/i.exec(text.trim());
  if (!match) throw new Error(`not a size: ${text}`);
  const factor = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  const bytes = Math.floor(Number(match[1]) * factor);
  if (bytes < 1) throw new Error(`not a size: ${text}`);
  return bytes;
}

function defaultStateFile(): string {
  const base = process.env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'chunked-upload', 'resume.json');
}

async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  const { values, positionals: files } = args;
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const url = values.url ?? process.env.UPLOAD_URL ?? 'http://127.0.0.1:4000';
  const username = values.username ?? process.env.UPLOAD_USERNAME;
  const password = values.password ?? process.env.UPLOAD_PASSWORD;
  const token = values.token ?? process.env.UPLOAD_TOKEN;
  let chunkSize: number | undefined;
  try {
    chunkSize = values['chunk-size'] ? parseSize(values['chunk-size']) : undefined;
  } catch (err) {
    process.stderr.write(`--chunk-size: ${(err as Error).message}\n`);
    return 2;
  }
  const parallel = values.parallel === undefined ? undefined : Number(values.parallel);
  if (parallel !== undefined && !(Number.isInteger(parallel) && parallel >= 1 && parallel <= 64)) {
    process.stderr.write(`--parallel: give a whole number from 1 to 64\n`);
    return 2;
  }
  if (files.length === 0 || (!token && !(username && password))) {
    process.stderr.write(`Give at least one file, and --username and --password (or --token).\n\n${HELP}\n`);
    return 2;
  }

  // Before logging in or sending anything: a mistyped name should not cost half a run.
  const unreadable = files.map(fileProblem).filter(Boolean);
  if (unreadable.length > 0) {
    process.stderr.write(unreadable.map((line) => `upload-file: ${line}\n`).join(''));
    return 2;
  }

  const client = new UploadClient({
    url,
    token,
    credentials: username && password ? { username, password } : undefined,
    store: new JsonFileResumeStore(values['state-file'] ?? defaultStateFile()),
  });
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort(new DOMException('Interrupted', 'AbortError'));
  };
  process.on('SIGINT', onSigint);

  try {
    if (!token) await client.login(username!, password!);
  } catch (err) {
    process.stderr.write(`Login failed: ${(err as Error).message}\n`);
    return 1;
  }

  let failed = 0;
  for (const file of files) {
    const bar = values.quiet ? undefined : new ProgressBar(process.stderr, path.basename(file));
    try {
      const result = await client.upload(file, {
        chunkSize,
        description: values.description,
        signal: controller.signal,
        fingerprint: values['no-resume'] ? null : undefined,
        direct: values['no-direct'] ? false : 'auto',
        parallelParts: parallel,
        onProgress: (p) => bar?.update(p),
        onRetry: (err, attempt, delay) => {
          bar?.finish();
          process.stderr.write(`${path.basename(file)}: ${err.code} (${err.message}); retry ${attempt} in ${(delay / 1000).toFixed(1)} s\n`);
        },
      });
      bar?.finish(
        `${result.file.name}: ${formatBytes(result.file.size)} uploaded${result.resumedFrom > 0 ? ` (resumed at ${formatBytes(result.resumedFrom)})` : ''}, md5 ${result.md5}`,
      );
      process.stdout.write(
        `${JSON.stringify({
          path: file,
          id: result.file.id,
          name: result.file.name,
          size: result.file.size,
          md5: result.md5,
          status: result.file.status,
          resumedFrom: result.resumedFrom,
          downloadUrl: client.downloadUrl(result.file),
        })}\n`,
      );
    } catch (err) {
      if (isAbortError(err) || controller.signal.aborted) {
        const message = `${path.basename(file)}: paused. Run the same command again to resume.`;
        if (bar) bar.finish(message);
        else process.stderr.write(`${message}\n`);
        return 130;
      }
      failed++;
      const code = err instanceof UploadError ? `${err.code}: ` : '';
      bar?.finish();
      process.stderr.write(`${path.basename(file)}: failed: ${code}${(err as Error).message}\n`);
    }
  }
  process.off('SIGINT', onSigint);
  return failed > 0 ? 1 : 0;
}

/** Why `file` cannot be uploaded, in one line; undefined when it can. */
function fileProblem(file: string): string | undefined {
  try {
    return statSync(file).isFile() ? undefined : `${file}: not a regular file`;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return `${file}: no such file`;
    if (code === 'EACCES') return `${file}: permission denied`;
    return `${file}: ${(err as Error).message}`;
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      username: { type: 'string', short: 'u' },
      password: { type: 'string', short: 'p' },
      token: { type: 'string' },
      description: { type: 'string', short: 'd' },
      'chunk-size': { type: 'string' },
      'state-file': { type: 'string' },
      'no-resume': { type: 'boolean' },
      'no-direct': { type: 'boolean' },
      parallel: { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

if (require.main === module) {
  // exitCode rather than exit(): stdout may be a pipe still being written to.
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`${(err as Error).stack ?? err}\n`);
      process.exitCode = 1;
    },
  );
}
