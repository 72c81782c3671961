import assert from 'node:assert/strict';
import { randomBytes, scryptSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { expectHealthy, outcome } from './helpers/assert';
import { CREATE_USER, LOGIN, tag, type GraphQLResult } from './helpers/client';
import { databaseKind } from './helpers/database';
import { ADMIN, startServers, type TestServer } from './helpers/server';

// Login throttling (issue 4, "Security"), over real HTTP: README "Security": 5 consecutive
// failures lock a username for 30 s (doubling, at most 15 minutes); 50 failures from one address
// in 15 minutes block the address until the window ends.

const USERNAME_LOCK_SECONDS = 30;
const ADDRESS_WINDOW_SECONDS = 15 * 60;

/** A RATE_LIMITED answer; returns its retryAfter, a whole number of seconds within `[min, max]`. */
function assertRateLimited(result: GraphQLResult, min: number, max: number): number {
  assert.equal(outcome(result), 'RATE_LIMITED', JSON.stringify(result.errors ?? result.data));
  const retryAfter = result.errors![0].extensions!.retryAfter;
  assert.ok(Number.isInteger(retryAfter), `retryAfter is a whole number of seconds: ${JSON.stringify(retryAfter)}`);
  assert.ok((retryAfter as number) >= min && (retryAfter as number) <= max, `retryAfter ${retryAfter} s, expected ${min} to ${max} s`);
  return retryAfter as number;
}

describe(`security: login throttling (${databaseKind})`, () => {
  let server: TestServer;
  /** Its one client address (127.0.0.1) gets blocked by the address limit: used by that test only. */
  let lockedOut: TestServer;

  before(async () => {
    // TRUST_PROXY: X-Forwarded-For names the client, so one test process can log in from many addresses.
    [server, lockedOut] = await startServers({ TRUST_PROXY: 'true' }, { NODE_ENV: 'production', JWT_SECRET: 'q'.repeat(40) });
  });
  after(() => Promise.all([server?.close(), lockedOut?.close()]));

  /** A login from `address` (X-Forwarded-For), else from 127.0.0.1. */
  const login = (username: string, password: string, address?: string) =>
    server.client.request(LOGIN, { u: username, p: password }, address ? { 'x-forwarded-for': address } : {});
  const CHANGE = `mutation($o: String!, $n: String!) { changePassword(oldPassword: $o, newPassword: $n) }`;
  /** How many answers carried each outcome. */
  const tally = (results: GraphQLResult[]) =>
    results.map(outcome).reduce<Record<string, number>>((counts, o) => ({ ...counts, [o]: (counts[o] ?? 0) + 1 }), {});
  /** An account of its own made by the admin: [username, password]. */
  async function account(prefix: string): Promise<[string, string]> {
    const username = `${prefix}_${tag()}`;
    const password = `pw-${randomBytes(6).toString('hex')}`;
    await server.admin.data(`mutation($u: String!, $p: String!) { createUser(username: $u, password: $p) { id } }`, { u: username, p: password });
    return [username, password];
  }
  /** Five wrong passwords in a row: the username is locked. */
  async function lock(username: string, address?: string): Promise<void> {
    for (let i = 1; i <= 5; i++) assert.equal(outcome(await login(username, `wrong-${i}`, address)), 'UNAUTHENTICATED', `failure ${i}`);
  }

  it('5 wrong passwords lock the username: the 6th attempt, even right, is RATE_LIMITED, for at most 15 minutes', async () => {
    const [victim, password] = await account('victim');
    const session = await server.client.login(victim, password);
    await lock(victim);
    const first = assertRateLimited(await login(victim, password), USERNAME_LOCK_SECONDS - 5, USERNAME_LOCK_SECONDS);
    for (const variant of [victim.toUpperCase(), `  ${victim[0].toUpperCase()}${victim.slice(1)} `]) {
      assertRateLimited(await login(variant, password), 1, first);
    }
    for (let i = 0; i < 3; i++) {
      // Hammering a locked username does not extend the lock.
      assertRateLimited(await login(victim, 'still-wrong'), 1, first);
    }
    assert.equal((await session.data(`{ me { username } }`)).me.username, victim, 'sessions from before the lock keep working');
  });

  it('a locked username does not lock out other usernames from the same address', async () => {
    const [victim] = await account('victim');
    const [bystander, password] = await account('bystander');
    await lock(victim);
    assertRateLimited(await login(victim, 'wrong'), 1, USERNAME_LOCK_SECONDS);
    assert.equal(outcome(await login(bystander, 'wrong')), 'UNAUTHENTICATED', 'one failure for another username is not throttled');
    const ok = await login(bystander, password);
    assert.equal(outcome(ok), 'OK', JSON.stringify(ok.errors));
    assert.equal(ok.data.login.user.username, bystander);
  });

  it('a correct login resets the count: 4 failures, success, 4 failures is not throttled', async () => {
    const [resetter, password] = await account('resetter');
    for (let round = 1; round <= 2; round++) {
      for (let i = 1; i <= 4; i++) assert.equal(outcome(await login(resetter, 'wrong')), 'UNAUTHENTICATED', `round ${round}, failure ${i}`);
      assert.equal(outcome(await login(resetter, password)), 'OK', `round ${round}: the right password after 4 failures`);
    }
  });

  it('a password hashed with older scrypt parameters still logs in, and is re-hashed with the current ones', async () => {
    const [username, password] = await account('oldhash');
    const storedHash = async () => (await server.sql(`select password_hash from users where username = ?`, [username]))[0].password_hash as string;
    // What an earlier version stored: scrypt N=2^15, r=8, p=1 (32 MiB).
    const salt = randomBytes(16);
    const key = scryptSync(password.normalize('NFKC'), salt, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
    const oldHash = ['scrypt', 2 ** 15, 8, 1, salt.toString('base64'), key.toString('base64')].join('$');
    await server.sql(`update users set password_hash = ? where username = ?`, [oldHash, username]);
    assert.equal(outcome(await login(username, 'wrong')), 'UNAUTHENTICATED');
    assert.equal(await storedHash(), oldHash, 'a failed login changes nothing');
    assert.equal(outcome(await login(username, password)), 'OK');
    assert.match(await storedHash(), /^scrypt\$8192\$8\$10\$/);
    assert.equal(outcome(await login(username, password)), 'OK', 'the upgraded hash verifies');
    assert.equal(outcome(await login(username, 'wrong')), 'UNAUTHENTICATED');
  });

  it('50 failures from one address over different usernames block that address; X-Forwarded-For does not get around it', async () => {
    const client = lockedOut.client;
    const attempt = (i: number) => client.request(LOGIN, { u: `nobody_${i}`, p: 'wrong-password' }, { 'x-forwarded-for': `203.0.113.${i}` }).then(outcome);
    const codes: string[] = [];
    // 45 in parallel batches (none of them can reach the limit), the last 5 one by one.
    for (let i = 1; i <= 45; i += 5) codes.push(...(await Promise.all([0, 1, 2, 3, 4].map((k) => attempt(i + k)))));
    for (let i = 46; i <= 50; i++) codes.push(await attempt(i));
    assert.deepEqual(codes, Array(50).fill('UNAUTHENTICATED'), 'at least 50 failures before the address is throttled');
    // Blocked until the window that began with the first failure ends.
    const window = [ADDRESS_WINDOW_SECONDS - 60, ADDRESS_WINDOW_SECONDS] as const;
    assertRateLimited(await client.request(LOGIN, { u: 'nobody_51', p: 'wrong-password' }, { 'x-forwarded-for': '198.51.100.7' }), ...window);
    assertRateLimited(await client.request(LOGIN, { u: 'nobody_52', p: 'wrong-password' }), ...window);
    assert.equal((await lockedOut.admin.data(`{ me { username } }`)).me.username, ADMIN.username, 'issued tokens keep working');
    await expectHealthy(lockedOut.url);
  });
  // Issue 13, "hostile clients": the throttle must not lock the owner out, nor be walked round.
  describe('hostile clients', () => {
    it('someone guessing from another address never locks the owner out, not even by guessing again whenever the lock ends', async () => {
      const [owner, password] = await account('owner');
      const attacker = '203.0.113.10';
      await lock(owner, attacker);
      assertRateLimited(await login(owner, password, attacker), USERNAME_LOCK_SECONDS - 5, USERNAME_LOCK_SECONDS);
      assert.equal(outcome(await login(owner, password, '198.51.100.20')), 'OK', 'the owner, from an address of their own');
      for (let round = 1; round <= 3; round++) {
        // The attacker's lock ends (as if its time had passed)...
        await server.sql(`update login_throttle set last_failure_at = last_failure_at - interval '1 hour' where key like ?`, [`pair:${attacker} %`]);
        // ...one more wrong guess locks it again, for twice as long...
        assert.equal(outcome(await login(owner, 'wrong-again', attacker)), 'UNAUTHENTICATED', `round ${round}`);
        const lockSeconds = USERNAME_LOCK_SECONDS * 2 ** round;
        assertRateLimited(await login(owner, password, attacker), lockSeconds - 5, lockSeconds);
        // ...and the owner still logs in.
        const ok = await login(owner, password, '198.51.100.20');
        assert.equal(outcome(ok), 'OK', `round ${round}: ${JSON.stringify(ok.errors)}`);
      }
    });

    it('50 failures for one username from many addresses: addresses that failed are refused, one that did not still gets through', async () => {
      const [target, password] = await account('budget');
      // 10 addresses, 5 wrong guesses each (each pair's limit): 50 for the username, in rounds,
      // so no address is refused before its 5th by the budget the others have used up.
      const addresses = Array.from({ length: 10 }, (_, i) => `203.0.113.${100 + i}`);
      for (let round = 1; round <= 5; round++) {
        const codes = await Promise.all(addresses.map((address) => login(target, `wrong-${round}`, address).then(outcome)));
        assert.deepEqual(codes, Array(10).fill('UNAUTHENTICATED'), `round ${round}`);
      }
      const fresh = '203.0.113.200';
      assert.equal(outcome(await login(target, 'wrong', fresh)), 'UNAUTHENTICATED', 'an address with no failure yet is let through');
      assertRateLimited(await login(target, password, fresh), 1, 15 * 60);
      assert.equal(outcome(await login(target, password, '198.51.100.21')), 'OK', 'the owner, from an address with no failures');
      // The owner's login ends the username's run: the address that failed once is let through again.
      assert.equal(outcome(await login(target, password, fresh)), 'OK');
    });

    it('ADMİN (dotted capital I) is not admin: it neither walks round a lock nor logs in; a compatibility form (fullwidth) is the same user', async () => {
      const [victim, password] = await account('victim');
      const dotted = victim.toUpperCase().replaceAll('I', '\u0130');
      const fullwidth = [...victim].map((c) => (/[a-z0-9]/.test(c) ? String.fromCodePoint(c.codePointAt(0)! + 0xfee0) : c)).join('');
      assert.notEqual(dotted, victim.toUpperCase());
      await lock(victim);
      assert.equal(outcome(await login(dotted, password)), 'UNAUTHENTICATED', 'no user of that name');
      assertRateLimited(await login(fullwidth, password), 1, USERNAME_LOCK_SECONDS);
      await server.sql(`delete from login_throttle where key like ?`, ['pair:%']);
      assert.equal(outcome(await login(dotted, password)), 'UNAUTHENTICATED', 'unlocked: still no user of that name');
      const asFullwidth = await login(fullwidth, password);
      assert.equal(asFullwidth.data?.login.user.username, victim, JSON.stringify(asFullwidth.errors));
      // createUser compares the same way.
      const created = await server.admin.request(CREATE_USER, { u: dotted, p: 'password-123456' });
      assert.equal(outcome(created), 'OK', JSON.stringify(created.errors));
      assert.equal(outcome(await server.admin.request(CREATE_USER, { u: fullwidth, p: 'password-123456' })), 'BAD_USER_INPUT', 'taken');
      assert.equal((await login(dotted, 'password-123456')).data?.login.user.username, dotted);
    });

    it('30 simultaneous wrong passwords for one username from one address: 5 password checks, 25 RATE_LIMITED', async () => {
      const [target] = await account('burst');
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => login(target, `wrong-${i}`, '203.0.113.30')));
      assert.deepEqual(tally(results), { UNAUTHENTICATED: 5, RATE_LIMITED: 25 });
    });

    it('20 simultaneous correct logins for one username from one address all succeed (the limits count failures, not attempts)', async () => {
      const [busy, password] = await account('busy');
      const results = await Promise.all(Array.from({ length: 20 }, () => login(busy, password, '203.0.113.31')));
      assert.deepEqual(tally(results), { OK: 20 });
    });

    it('200 simultaneous failures from one address: 50 password checks, 150 RATE_LIMITED', async () => {
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => login(`nobody_burst_${i}`, 'wrong-password', '203.0.113.40')));
      assert.deepEqual(tally(results), { UNAUTHENTICATED: 50, RATE_LIMITED: 150 });
    });

    it('changePassword: a stolen token guessing the old password is throttled like login (20 at once: 5 checks), the owner is not', async () => {
      const [name, password] = await account('changer');
      const session = await server.client.login(name, password);
      const thief = { 'x-forwarded-for': '203.0.113.50' };
      const guesses = await Promise.all(Array.from({ length: 20 }, (_, i) => session.request(CHANGE, { o: `guess-${i}`, n: 'new-password-1' }, thief)));
      assert.deepEqual(tally(guesses), { FORBIDDEN: 5, RATE_LIMITED: 15 });
      assertRateLimited(await session.request(CHANGE, { o: password, n: 'new-password-1' }, thief), USERNAME_LOCK_SECONDS - 5, USERNAME_LOCK_SECONDS);
      assertRateLimited(await login(name, password, '203.0.113.50'), 1, USERNAME_LOCK_SECONDS);
      assert.equal((await session.data(`{ me { username } }`)).me.username, name, 'the token itself still works');
      const changed = await session.request(CHANGE, { o: password, n: 'new-password-1' }, { 'x-forwarded-for': '198.51.100.22' });
      assert.equal(outcome(changed), 'OK', JSON.stringify(changed.errors));
      assert.equal(outcome(await login(name, 'new-password-1', '198.51.100.22')), 'OK');
    });
  });
});
