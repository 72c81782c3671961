#!/usr/bin/env -S node --expose-gc
import 'reflect-metadata';
import { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { formatByteSize, parseByteSize } from './byte-size';
import { ConfigError, loadConfig, type Config } from './config';
import { openDatabase, type Database } from './db/orm';
import { AppError, Errors } from './errors';
import { TokenScope } from './entities';
import { Md5Pool } from './hashing/md5-pool';
import { createLogger } from './logger';
import { readNewPassword } from './password-input';
import { createServices } from './services';
import { LoginThrottleService } from './services/login-throttle.service';
import { QuotaService } from './services/quota.service';
import { UserService } from './services/user.service';
import { serve } from './server';
import { describeDatabase, StartupError } from './startup';
import { openStore } from './storage';

/**
 * Runs `work` on the database (migrated), then closes it. Says on stderr which database it is,
 * since DATA_DIR and DATABASE_URL decide that and a wrong one would look like a lost user.
 * `mustExist`: refuse a DATA_DIR with no embedded database instead of creating an empty one.
 */
async function withDatabase<T>(command: string, mustExist: boolean, work: (database: Database, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig(process.env, 'maintenance');
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const database = await openDatabase(
    { databaseUrl: config.databaseUrl, dataDir: config.dataDir, log: (message) => log.info(message) },
    { command: `upload-server ${command}`, mustExist },
  );
  try {
    console.error(`using ${describeDatabase(config)}`);
    return await work(database, config);
  } finally {
    await database.close();
  }
}

const users = (database: Database, config: Config) => new UserService(database.orm, new LoginThrottleService(database.orm), config.defaultUserQuota);

/**
 * The server's services over the command's database and store (deleting a user frees their
 * uploads' bytes). Nothing here signs tokens: a throwaway key spares DATA_DIR a jwt-secret file.
 * The md5 pool's workers start on first use only, and nothing is hashed.
 */
async function servicesFor(database: Database, config: Config) {
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const store = await openStore(config);
  return createServices(database.orm, store, new Md5Pool(), { ...config, jwtSecret: config.jwtSecret ?? randomBytes(32).toString('base64url') }, log);
}

/** The user named `username` (any case, as login finds it). */
async function userNamed(database: Database, config: Config, username: string) {
  const user = await users(database, config).findByUsername(username);
  if (!user) throw Errors.notFound(`User "${username}"`);
  return user;
}

const program = new Command()
  .name('upload-server')
  .description('GraphQL server for large, resumable, chunked file uploads. Configured by environment variables (see README).')
  .addHelpText(
    'after',
    `
The database: DATABASE_URL (postgres://user:password@host:5432/name) when set, else the embedded
PostgreSQL under DATA_DIR/db (DATA_DIR defaults to ./data, relative to the current directory).
Every command but serve says which one it used. The embedded database can be open in one process
at a time: while the server runs on it, use the API instead of create-user or reset-password.`,
  )
  .showHelpAfterError();

program
  .command('serve')
  .description('run the server (the same as `npm start`)')
  .action(() => serve(loadConfig()));

program
  .command('migrate')
  .description('create the database schema or apply pending migrations, and exit (the server also does it at start-up)')
  .action(() =>
    withDatabase('migrate', false, async (database) => {
      console.log(database.applied.length ? `applied: ${database.applied.join(', ')}` : 'the database schema is up to date');
    }),
  );

program
  .command('create-user')
  .description('create a user (usernames are unique regardless of case)')
  .requiredOption('--username <name>', 'login name')
  .option('--password <password>', 'at least 8 characters; without it: asked in a terminal, else read from standard input')
  .option('--admin', 'may create users and change or delete any file', false)
  .action((options: { username: string; password?: string; admin: boolean }) =>
    withDatabase('create-user', true, async (database, config) => {
      const password = await readNewPassword(options.password, options.username);
      const user = await users(database, config).create({ username: options.username, password, isAdmin: options.admin });
      console.log(`created ${user.isAdmin ? 'admin' : 'user'} ${user.username} (${user.id})`);
    }),
  );

program
  .command('reset-password')
  .description("set a user's password without the old one; tokens issued before stop working")
  .argument('<username>', 'whose password (any case)')
  .option('--password <password>', 'at least 8 characters; without it: asked in a terminal, else read from standard input')
  .action((username: string, options: { password?: string }) =>
    withDatabase('reset-password', true, async (database, config) => {
      const password = await readNewPassword(options.password, username);
      const user = await users(database, config).resetPassword(username, password);
      console.log(`reset the password of ${user.username}; tokens issued before no longer work`);
    }),
  );

program
  .command('users')
  .description('list the users, oldest first')
  .action(() =>
    withDatabase('users', true, async (database, config) => {
      const rows = (await users(database, config).list()).map((u) => [
        u.username,
        u.isAdmin ? 'admin' : 'user',
        u.disabled ? 'disabled' : 'active',
        u.createdAt.toISOString(),
        u.id,
      ]);
      const table = [['USERNAME', 'ROLE', 'STATUS', 'CREATED', 'ID'], ...rows];
      const widths = table[0].map((_, column) => Math.max(...table.map((row) => row[column].length)));
      for (const row of table) console.log(row.map((cell, column) => cell.padEnd(widths[column])).join('  ').trimEnd());
    }),
  );

program
  .command('disable-user')
  .description('disable a user at once: every token of theirs stops working and they cannot log in (files stay); --enable undoes it')
  .argument('<username>', 'who (any case)')
  .option('--enable', 'enable the user again instead (login tokens from before stay ended; access tokens work again)', false)
  .action((username: string, options: { enable: boolean }) =>
    withDatabase('disable-user', true, async (database, config) => {
      const services = await servicesFor(database, config);
      const user = await services.userAdmin.update((await userNamed(database, config, username)).id, { disabled: !options.enable });
      console.log(`${user.disabled ? 'disabled' : 'enabled'} ${user.username}`);
    }),
  );

program
  .command('delete-user')
  .description('delete a user: their tokens end, their uploads in progress are aborted and freed; their files stay, without an author')
  .argument('<username>', 'who (any case)')
  .action((username: string) =>
    withDatabase('delete-user', true, async (database, config) => {
      const services = await servicesFor(database, config);
      const user = await services.userAdmin.delete((await userNamed(database, config, username)).id);
      console.log(`deleted ${user.username} (${user.id}); their files stay, without an author`);
    }),
  );

program
  .command('create-token')
  .description('create an access token for a user (for scripts and CI); the token is printed once, on standard output')
  .argument('<username>', 'whose token (any case)')
  .requiredOption('--name <name>', 'what it is for, as listed by myAccessTokens')
  .option('--scope <scopes>', 'comma-separated: READ (queries, downloads), UPLOAD (READ plus uploads), FULL (all the user may do)', 'UPLOAD')
  .option('--expires-in-days <days>', '1 to 3650; without it the token does not expire')
  .action((username: string, options: { name: string; scope: string; expiresInDays?: string }) =>
    withDatabase('create-token', true, async (database, config) => {
      const scopes = options.scope.split(',').map((scope) => scope.trim().toUpperCase());
      const unknown = scopes.filter((scope) => !(Object.values(TokenScope) as string[]).includes(scope));
      if (unknown.length > 0) throw Errors.badInput(`Unknown scope ${unknown.join(', ')}: use READ, UPLOAD or FULL.`);
      const days = options.expiresInDays === undefined ? null : Number(options.expiresInDays);
      const services = await servicesFor(database, config);
      const user = await userNamed(database, config, username);
      const { token, accessToken } = await services.accessTokens.create(user, { name: options.name, scopes: scopes as TokenScope[], expiresInDays: days });
      const until = accessToken.expiresAt ? `until ${accessToken.expiresAt.toISOString()}` : 'without expiry';
      console.error(`created access token "${accessToken.name}" (${accessToken.id}) for ${user.username}, ${accessToken.scopes.join(',')}, ${until}; it is shown only this once:`);
      console.log(token);
    }),
  );

program
  .command('set-quota')
  .description("set how much a user may store (files and uploads in progress together); `none` lifts the limit")
  .argument('<username>', 'whose quota (any case)')
  .argument('<size>', 'bytes (10737418240), a size (10GiB, 500MB: KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024), or none')
  .action((username: string, size: string) =>
    withDatabase('set-quota', true, async (database) => {
      const quotaBytes = size.trim().toLowerCase() === 'none' ? null : parseByteSize(size);
      if (quotaBytes === undefined) throw Errors.badInput(`"${size}" is not a size: give bytes (10737418240), a size such as 10GiB, or none.`);
      const quotas = new QuotaService(database.orm, createLogger('warn'));
      const user = await quotas.setQuotaByName(username, quotaBytes);
      const used = await quotas.usedBytes(user.id);
      const quota = user.quotaBytes === null ? 'no limit' : `${formatByteSize(user.quotaBytes)} (${user.quotaBytes} bytes)`;
      console.log(`quota of ${user.username}: ${quota}; using ${formatByteSize(used)} (${used} bytes)`);
    }),
  );

program
  .command('cleanup')
  .description('expire stale uploads and delete their bytes, drop old upload records, delete orphaned bytes')
  .action(() =>
    withDatabase('cleanup', true, async (database, config) => {
      console.error(config.storage.kind === 's3' ? `using S3 bucket ${config.storage.bucket}` : `using stored files under ${config.dataDir}`);
      const services = await servicesFor(database, config);
      const report = await services.cleanup.run((message) => console.log(message));
      console.log(JSON.stringify(report));
    }),
  );

program.parseAsync().catch((err) => {
  // Known reasons in their own words, one line each; anything else with its stack.
  if (err instanceof ConfigError || err instanceof AppError || err instanceof StartupError) console.error(err.message);
  else console.error(err);
  process.exit(1);
});
