import type { MikroORM } from '@mikro-orm/core';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { LoginThrottle } from '../entities';
import { Errors } from '../errors';
import { escapeLike } from './validation';

/** API.md: at least 5 consecutive failures for a username (here: from one address) before it is throttled... */
const PAIR_FAILURES_BEFORE_LOCK = 5;
/** ...for a while that doubles with each further failure, but never for longer than this. */
const PAIR_LOCK_BASE_SECONDS = 30;
const PAIR_LOCK_MAX_SECONDS = 15 * 60;
/** ...or at least 50 failures from one address within 15 minutes. */
const ADDRESS_FAILURES_BEFORE_BLOCK = 50;
/** A username's failures from all addresses together, since its last correct password, within the window. */
const USERNAME_FAILURE_BUDGET = 50;
const WINDOW_SECONDS = 15 * 60;
/** Keys stay short whatever a client sends as a username. */
const MAX_SUBJECT_LENGTH = 200;
/**
 * A check in progress holds its place this long at most: one whose outcome was never recorded
 * (the process died mid-check) stops counting this long after the key's last new check.
 */
const PENDING_TTL_SECONDS = 60;
/**
 * How long an attempt waits for checks in progress to decide whether a limit is reached: as
 * long as a place is held at most, so a burst of correct logins on a busy machine (5 checks at
 * a time for one username and address) is slowed down, not refused.
 */
const MAX_WAIT_MS = PENDING_TTL_SECONDS * 1000;

interface Keys {
  address: string;
  pair: string;
  username: string;
}

interface Row {
  key: string;
  failures: number;
  /** Checks in progress (their passwords are being compared right now). */
  pending: number;
  /** Seconds since the row's window began (address and username rows). */
  window_age: number;
  /** Seconds since the last failure. */
  idle: number;
}

/**
 * Slows password guessing (login, and changePassword's old password) with three counters in
 * the database, so every instance shares them:
 * - per (username, address): consecutive failures; from the 5th on, that address is locked out
 *   of that username for 30 s, doubling per further failure up to 15 minutes. Someone guessing
 *   an account's password therefore never locks its owner out from another address;
 * - per address: failures within 15 minutes; from the 50th on, the address is blocked until
 *   the window ends;
 * - per username, over all addresses: failures since its last correct password within 15
 *   minutes; from the 50th on, addresses that failed at that username recently are refused,
 *   while an address with no recent failure (the owner's, most likely) still gets through.
 *
 * Simultaneous attempts cannot slip past a limit: each password check takes a place
 * (`pending`) in one transaction that locks the counters, and while the checks in progress
 * could reach a limit, a further attempt waits for their outcome instead of being checked too.
 * So 30 simultaneous guesses get exactly 5 checks, while 30 simultaneous correct logins all
 * succeed (a few of them a moment later).
 */
export class LoginThrottleService {
  constructor(private readonly orm: MikroORM) {}

  /**
   * Runs `check` (does the password match?) for `username` (its `usernameKey`) from `address`
   * if the throttle allows it, records the outcome, and returns it. Throws RATE_LIMITED, without
   * running `check`, when the address or the pair is blocked.
   */
  async attempt(username: string, address: string, check: () => Promise<boolean>): Promise<boolean> {
    const subject = subjectOf(username);
    const keys: Keys = { address: `ip:${address}`, pair: `pair:${address} ${subject}`, username: `user:${subject}` };
    const deadline = Date.now() + MAX_WAIT_MS;
    for (let pause = 20; !(await this.reserve(keys)); pause = Math.min(pause * 2, 500)) {
      // Checks in progress might reach a limit: wait for their outcome rather than guess it.
      if (Date.now() > deadline) throw Errors.rateLimited(1);
      await sleep(pause * (0.5 + Math.random()));
    }
    let ok: boolean;
    try {
      ok = await check();
    } catch (err) {
      await this.settle(keys, 'abandoned').catch(() => {});
      throw err;
    }
    await this.settle(keys, ok ? 'succeeded' : 'failed');
    return ok;
  }

  /**
   * Takes a place for one check; false when checks in progress leave no room (try again
   * shortly). Throws RATE_LIMITED, changing nothing, when a limit is reached.
   */
  private async reserve(keys: Keys): Promise<boolean> {
    // One order for every transaction, so two of them never wait on each other's rows.
    const sorted = Object.values(keys).sort();
    return this.orm.em.fork().transactional(async (em) => {
      const connection = em.getConnection();
      const context = em.getTransactionContext();
      // The upsert locks the three rows (existing or new) until the transaction ends.
      const rows: Row[] = await connection.execute(
        `insert into login_throttle (key, failures, window_started_at, last_failure_at)
         values (?, 0, now(), now()), (?, 0, now(), now()), (?, 0, now(), now())
         on conflict (key) do update set failures = login_throttle.failures
         returning key, failures,
           case when pending_until > now() then pending else 0 end as pending,
           extract(epoch from now() - window_started_at)::float8 as window_age,
           extract(epoch from now() - last_failure_at)::float8 as idle`,
        sorted,
        'all',
        context,
      );
      const row = (key: string) => rows.find((r) => r.key === key)!;
      const address = row(keys.address);
      const pair = row(keys.pair);
      const user = row(keys.username);
      const inWindow = (r: Row) => (r.window_age < WINDOW_SECONDS ? r.failures : 0);
      const waits: number[] = [];
      if (inWindow(address) >= ADDRESS_FAILURES_BEFORE_BLOCK) waits.push(WINDOW_SECONDS - address.window_age);
      if (pair.failures >= PAIR_FAILURES_BEFORE_LOCK) {
        const lock = Math.min(PAIR_LOCK_MAX_SECONDS, PAIR_LOCK_BASE_SECONDS * 2 ** (pair.failures - PAIR_FAILURES_BEFORE_LOCK));
        if (pair.idle < lock) waits.push(lock - pair.idle);
      }
      if (inWindow(user) >= USERNAME_FAILURE_BUDGET && pair.failures > 0 && pair.idle < WINDOW_SECONDS) {
        waits.push(WINDOW_SECONDS - user.window_age);
      }
      // Throwing rolls the transaction back: a refused attempt changes no counter.
      if (waits.length > 0) throw Errors.rateLimited(Math.max(1, Math.ceil(Math.max(...waits))));
      // Room for one more check: as many as failures could still follow before a limit (at
      // least one once a pair's lock has run out: its next failure locks it again).
      const pairRoom = Math.max(1, PAIR_FAILURES_BEFORE_LOCK - pair.failures);
      const addressRoom = ADDRESS_FAILURES_BEFORE_BLOCK - inWindow(address);
      if (pair.pending >= pairRoom || address.pending >= addressRoom) return false;
      await connection.execute(
        `update login_throttle set
           pending = case when pending_until > now() then pending + 1 else 1 end,
           pending_until = now() + make_interval(secs => ?)
         where key in (?, ?, ?)`,
        [PENDING_TTL_SECONDS, ...sorted],
        'run',
        context,
      );
      return true;
    });
  }

  /**
   * Gives the place back and records the outcome: a failure counts for all three keys; a
   * correct password ends the runs of failures of the pair and of the username (API.md: the
   * limits count consecutive failures), not the address's window.
   */
  private async settle(keys: Keys, outcome: 'succeeded' | 'failed' | 'abandoned'): Promise<void> {
    const [changes, params]: [string, unknown[]] =
      outcome === 'failed'
        ? [
            `failures = case when t.key <> ? and t.window_started_at <= now() - make_interval(secs => ?) then 1 else t.failures + 1 end,
             window_started_at = case when t.key <> ? and t.window_started_at <= now() - make_interval(secs => ?) then now() else t.window_started_at end,
             last_failure_at = now(),`,
            [keys.pair, WINDOW_SECONDS, keys.pair, WINDOW_SECONDS],
          ]
        : outcome === 'succeeded'
          ? [`failures = case when t.key = ? then t.failures else 0 end,`, [keys.address]]
          : ['', []];
    // One statement: the place is given back and the count changed at once, so no reservation
    // sees a free place whose failure is not counted yet. Its rows are locked in key order, as
    // reserve locks them, so the two never deadlock.
    await this.orm.em.getConnection().execute(
      `update login_throttle t set ${changes} pending = greatest(t.pending - 1, 0)
         from (select key from login_throttle where key in (?, ?, ?) order by key for update) locked
        where t.key = locked.key`,
      [...params, ...Object.values(keys).sort()],
    );
  }

  /** An operator reset the password (the CLI): the username's failures, from every address, are forgotten. */
  async forgetFailures(username: string): Promise<void> {
    const subject = subjectOf(username);
    await this.orm.em
      .getConnection()
      .execute(`update login_throttle set failures = 0 where key = ? or key like ?`, [`user:${subject}`, `pair:% ${escapeLike(subject)}`]);
  }

  /** Forgets entries idle for a day (cleanup): every lock, window and check in progress is over by then. */
  async purgeIdle(): Promise<number> {
    const dayAgo = new Date(Date.now() - 86400_000);
    return this.orm.em.fork().nativeDelete(LoginThrottle, { lastFailureAt: { $lt: dayAgo }, $or: [{ pendingUntil: null }, { pendingUntil: { $lt: new Date() } }] });
  }
}

/** A username's key in the counters (its usernameKey; hashed when long). */
function subjectOf(username: string): string {
  return username.length > MAX_SUBJECT_LENGTH ? `sha256:${createHash('sha256').update(username).digest('hex')}` : username;
}
