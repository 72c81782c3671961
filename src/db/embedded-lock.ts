import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StartupError } from '../startup';

/**
 * Who holds the embedded database: written once, whole, into `<db dir>.lock` next to it.
 * PGlite is PostgreSQL in one process with no shared memory: a second process opening the same
 * directory would not see the first one's writes, and its own would be lost or corrupt the
 * files. So whoever opens it (server or CLI) takes this lock first.
 */
interface Holder {
  pid: number;
  hostname: string;
  /** What holds it, for the message: "upload-server serve", "upload-server create-user". */
  command: string;
  since: string;
  /** Tells this holder's file from a later one with the same pid. */
  nonce: string;
}

export interface EmbeddedLock {
  readonly file: string;
  release(): void;
}

/** Lock files this process holds: a second open in the same process is refused too. */
const heldHere = new Set<string>();

/**
 * Takes the lock of the embedded database in `dbDir`, or throws a StartupError that names the
 * directory, the holder and what to do.
 *
 * A lock file created exclusively (O_EXCL) with the holder's pid, rather than a lock refreshed
 * by mtime (proper-lockfile): the kernel says at once whether that pid is alive, so a server
 * restarted right after a crash or a SIGKILL starts at once, and a frozen holder (SIGSTOP, a
 * long pause) keeps its lock instead of having it taken while it can still write. A holder on
 * another host (a shared volume, a recreated container) cannot be checked: it is refused with
 * the file to delete.
 */
export function lockEmbeddedDatabase(dbDir: string, command: string): EmbeddedLock {
  const file = `${dbDir}.lock`;
  if (heldHere.has(file)) throw new StartupError(`${capitalized(dbDir)} is already open in this process.`);
  mkdirSync(path.dirname(file), { recursive: true });
  const mine: Holder = { pid: process.pid, hostname: os.hostname(), command, since: new Date().toISOString(), nonce: randomUUID() };
  for (let attempt = 0; attempt < 20; attempt++) {
    if (create(file, mine)) return hold(file, mine);
    const holder = read(file);
    // Gone since (released), or being written this instant: look again.
    if (holder === 'missing') continue;
    if (holder === 'unreadable') {
      pause(50);
      continue;
    }
    if (!isStale(holder)) throw new StartupError(lockedMessage(dbDir, file, holder));
    removeStale(file, holder);
  }
  throw new StartupError(`${capitalized(dbDir)}: could not take its lock ${file} (unreadable or changing all the time); if no server uses it, delete that file.`);
}

function capitalized(dbDir: string): string {
  return `The embedded database at ${dbDir}`;
}

function lockedMessage(dbDir: string, file: string, holder: Holder): string {
  const who = `pid ${holder.pid}${holder.hostname === os.hostname() ? '' : ` on host ${holder.hostname}`} (${holder.command}, since ${holder.since})`;
  const unsure = holder.hostname === os.hostname() ? '' : ` If that process no longer runs, delete ${file}.`;
  return (
    `${capitalized(dbDir)} is in use by ${who}: only one process can open it. ` +
    `Stop the server first, or while it runs use the API (createUser, changePassword).${unsure}`
  );
}

function create(file: string, holder: Holder): boolean {
  try {
    writeFileSync(file, `${JSON.stringify(holder)}\n`, { flag: 'wx', mode: 0o644 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

function read(file: string): Holder | 'missing' | 'unreadable' {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
  try {
    const holder = JSON.parse(text) as Holder;
    return Number.isInteger(holder.pid) && typeof holder.nonce === 'string' ? holder : 'unreadable';
  } catch {
    return 'unreadable';
  }
}

function isStale(holder: Holder): boolean {
  if (holder.hostname !== os.hostname()) return false;
  // This process does not hold it (heldHere): the file is from an earlier process that had the
  // same pid, as a container's server usually has pid 1 every time.
  if (holder.pid === process.pid) return true;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (err) {
    // EPERM: alive, but another user's.
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Moves the stale file aside before deleting it, so that of two processes that both found it
 * stale, the slower one cannot delete the lock the faster one has just taken: it would move that
 * fresh file instead, see it is not the one it judged, and put it back.
 */
function removeStale(file: string, stale: Holder): void {
  const aside = `${file}.${randomUUID()}.stale`;
  try {
    renameSync(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = read(aside);
  if (moved !== 'missing' && moved !== 'unreadable' && moved.nonce !== stale.nonce) {
    // Someone's fresh lock: back where it was, unless yet another process took the lock since.
    try {
      writeFileSync(file, `${JSON.stringify(moved)}\n`, { flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  unlinkSync(aside);
}

function hold(file: string, mine: Holder): EmbeddedLock {
  heldHere.add(file);
  // A process that exits without closing the database (process.exit on an error) still leaves
  // the directory free; only a kill leaves the file, and the next opener finds its pid gone.
  const onExit = () => release();
  process.once('exit', onExit);
  let released = false;
  function release(): void {
    if (released) return;
    released = true;
    process.off('exit', onExit);
    heldHere.delete(file);
    const current = read(file);
    if (current !== 'missing' && current !== 'unreadable' && current.nonce === mine.nonce) unlinkSync(file);
  }
  return { file, release };
}

function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
