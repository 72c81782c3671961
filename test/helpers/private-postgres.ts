import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

/**
 * A PostgreSQL cluster of a test's own, on its own port, for tests that crash the database:
 * the shared server stays untouched, so such a test need not run alone.
 */

const run = promisify(execFile);
const POSTGRES_ROOT = '/usr/lib/postgresql';

function binDir(): string | undefined {
  if (!existsSync(POSTGRES_ROOT)) return undefined;
  const version = readdirSync(POSTGRES_ROOT).sort((a, b) => Number(a) - Number(b)).at(-1);
  const dir = version && path.join(POSTGRES_ROOT, version, 'bin');
  return dir && existsSync(path.join(dir, 'initdb')) ? dir : undefined;
}

/** Why a private cluster cannot be made here, or false. */
export const NO_PRIVATE_POSTGRES: string | false = binDir() ? false : `no PostgreSQL server binaries under ${POSTGRES_ROOT}`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

export class PrivatePostgres {
  private constructor(
    private readonly dir: string,
    readonly port: number,
    private readonly settings: string[],
  ) {}

  /** initdb and start; `settings` are `name=value` server options. */
  static async create(settings: string[] = []): Promise<PrivatePostgres> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'private-pg-'));
    // initdb refuses to run as root: the cluster then belongs to the postgres user.
    if (process.getuid?.() === 0) {
      const { stdout } = await run('id', ['-u', 'postgres']);
      const { stdout: gid } = await run('id', ['-g', 'postgres']);
      await chown(dir, Number(stdout), Number(gid));
    }
    const cluster = new PrivatePostgres(dir, await freePort(), settings);
    await cluster.pgCommand('initdb', ['-D', cluster.dataDir, '-U', 'postgres', '--auth=trust', '--no-sync']);
    await cluster.start();
    return cluster;
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  private get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  async start(): Promise<void> {
    const options = ['-p', String(this.port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${this.dir}`];
    for (const setting of this.settings) options.push('-c', setting);
    await this.pgCommand('pg_ctl', ['-D', this.dataDir, '-l', path.join(this.dir, 'log'), '-w', '-o', options.map(quote).join(' '), 'start']);
  }

  /** Stops like a crash: no checkpoint, WAL not yet written is lost; the next start recovers. */
  async crash(): Promise<void> {
    await this.pgCommand('pg_ctl', ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop']);
  }

  /** One statement on a connection of its own. */
  async query<T extends pg.QueryResultRow = any>(sql: string, params: unknown[] = []): Promise<T[]> {
    const client = new pg.Client({ connectionString: this.url });
    await client.connect();
    try {
      return (await client.query<T>(sql, params)).rows;
    } finally {
      await client.end();
    }
  }

  async destroy(): Promise<void> {
    await this.pgCommand('pg_ctl', ['-D', this.dataDir, '-m', 'immediate', 'stop']).catch(() => {});
    await rm(this.dir, { recursive: true, force: true });
  }

  private async pgCommand(command: string, args: string[]): Promise<void> {
    const file = path.join(binDir()!, command);
    if (process.getuid?.() === 0) await run('runuser', ['-u', 'postgres', '--', file, ...args]);
    else await run(file, args);
  }
}

function quote(option: string): string {
  return /^[\w.=\/-]+$/.test(option) ? option : `'${option.replace(/'/g, `'\\''`)}'`;
}
