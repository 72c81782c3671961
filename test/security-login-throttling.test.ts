import assert from 'node:assert/strict';
import { randomBytes, scryptSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { expectHealthy, outcome } from './helpers/assert';
import { LOGIN, tag, type GraphQLResult } from './helpers/client';
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
    [server, lockedOut] = await startServers({}, { NODE_ENV: 'production', JWT_SECRET: 'q'.repeat(40) });
  });
  after(() => Promise.all([server?.close(), lockedOut?.close()]));

  const login = (username: string, password: string) => server.client.request(LOGIN, { u: username, p: password });
  /** An account of its own made by the admin: [username, password]. */
  async function account(prefix: string): Promise<[string, string]> {
    const username = `${prefix}_${tag()}`;
    const password = `pw-${randomBytes(6).toString('hex')}`;
    await server.admin.data(`mutation($u: String!, $p: String!) { createUser(username: $u, password: $p) { id } }`, { u: username, p: password });
    return [username, password];
  }
  /** Five wrong passwords in a row: the username is locked. */
  async function lock(username: string): Promise<void> {
    for (let i = 1; i <= 5; i++) assert.equal(outcome(await login(username, `wrong-${i}`)), 'UNAUTHENTICATED', `failure ${i}`);
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
});
