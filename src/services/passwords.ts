import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';

// OWASP's scrypt setting for 8 MiB: N=2^13, r=8, p=10 (~160 ms per hash here). The lanes run one
// after another in the same 8 MiB, so a login costs a quarter of the memory of N=2^15, p=1
// (32 MiB) for 2.5 times its work.
const PARAMS = { cost: 2 ** 13, blockSize: 8, parallelization: 10 };
const KEY_LENGTH = 32;
/** `scrypt$N$r$p`: how every hash made today begins. */
const PARAMETER_PREFIX = ['scrypt', PARAMS.cost, PARAMS.blockSize, PARAMS.parallelization].join('$');

function scrypt(password: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCallback(password.normalize('NFKC'), salt, KEY_LENGTH, { ...options, maxmem: 128 * 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

/** Self-describing hash: `scrypt$N$r$p$salt$key`, so parameters can rise without a migration. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, PARAMS);
  return [PARAMETER_PREFIX, salt.toString('base64'), key.toString('base64')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, cost, blockSize, parallelization, salt, key] = stored.split('$');
  if (scheme !== 'scrypt' || !key) return false;
  const expected = Buffer.from(key, 'base64');
  const actual = await scrypt(password, Buffer.from(salt, 'base64'), {
    cost: Number(cost),
    blockSize: Number(blockSize),
    parallelization: Number(parallelization),
  });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** True for a hash made with other parameters than today's: rehash it at the next good login. */
export function needsRehash(stored: string): boolean {
  return !stored.startsWith(`${PARAMETER_PREFIX}$`);
}

/** A stand-in hash for unknown usernames, so a miss costs as much time as a wrong password. */
export const DUMMY_PASSWORD_HASH = `${PARAMETER_PREFIX}$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=`;
