import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { sleep } from './timing';

/**
 * The machine under the server: the PostgreSQL cluster and mounts. Only *.serial.test files
 * use these (they disturb everything else running).
 */

export const run = promisify(execFile);

/** [version, name] of the newest local cluster, for pg_ctlcluster. */
export function postgresCluster(): string[] {
  const versions = readdirSync('/etc/postgresql');
  assert.ok(versions.length > 0, 'no cluster under /etc/postgresql');
  return [versions.sort().at(-1)!, 'main'];
}

export async function restartPostgres(): Promise<void> {
  await run('pg_ctlcluster', ['--skip-systemctl-redirect', ...postgresCluster(), 'restart']);
}

async function pgIsReady(): Promise<boolean> {
  const url = new URL(process.env.TEST_DATABASE_URL!);
  try {
    await run('pg_isready', ['-h', url.hostname, '-p', url.port || '5432', '-t', '2']);
    return true;
  } catch {
    return false;
  }
}

/** Leaves PostgreSQL running whatever happened: waits for it, starts it if it stays down. */
export async function ensurePostgresUp(): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (await pgIsReady()) return;
      await sleep(250);
    }
    await run('pg_ctlcluster', ['--skip-systemctl-redirect', ...postgresCluster(), 'start']).catch(() => {});
  }
  throw new Error('PostgreSQL is not accepting connections after the restart test');
}

/** Mounts a tmpfs of `size` on `dir`; returns why it cannot (not root), else undefined. */
export async function mountTmpfs(dir: string, size: string): Promise<string | undefined> {
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs (needs root): ${(err as Error).message.split('\n')[0]}`;
  }
}

/** Unmounts `dir`, retrying while it is busy, lazily as a last resort. */
export async function unmount(dir: string): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      await run('umount', [dir]);
      return;
    } catch {
      await sleep(200);
    }
  }
  await run('umount', ['-l', dir]);
}
