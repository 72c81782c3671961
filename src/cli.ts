#!/usr/bin/env -S node --expose-gc
import 'reflect-metadata';
import { Command } from 'commander';
import { ConfigError, ensureJwtSecret, loadConfig, type Config } from './config';
import { openDatabase, type Database } from './db/orm';
import { AppError } from './errors';
import { Md5Pool } from './hashing/md5-pool';
import { createLogger } from './logger';
import { createServices, type Services } from './services';
import { serve } from './server';
import { openStore } from './storage';

/** Runs `work` with the database (migrated) and the services, then closes everything. */
async function withServices<T>(loaded: Config, work: (services: Services, database: Database) => Promise<T>): Promise<T> {
  const config = ensureJwtSecret(loaded);
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, log: (message) => log.info(message) });
  try {
    const store = await openStore(config);
    // The commands hash nothing: the pool's workers would start on first use only.
    return await work(createServices(database.orm, store, new Md5Pool(), config, log), database);
  } finally {
    await database.close();
  }
}

const program = new Command()
  .name('upload-server')
  .description('GraphQL server for large, resumable, chunked file uploads. Configured by environment variables (see README).')
  .showHelpAfterError();

program
  .command('serve')
  .description('run the server (the same as `npm start`)')
  .action(() => serve(loadConfig()));

program
  .command('migrate')
  .description('apply pending database migrations and exit')
  .action(() =>
    withServices(loadConfig(), async (_services, database) => {
      console.log(database.applied.length ? `applied: ${database.applied.join(', ')}` : 'the database schema is up to date');
    }),
  );

program
  .command('create-user')
  .description('create a user (usernames are unique regardless of case)')
  .requiredOption('--username <name>', 'login name')
  .requiredOption('--password <password>', 'at least 8 characters')
  .option('--admin', 'may create users and change or delete any file', false)
  .action((options: { username: string; password: string; admin: boolean }) =>
    withServices(loadConfig(), async (services) => {
      const user = await services.users.create({ username: options.username, password: options.password, isAdmin: options.admin });
      console.log(`created ${user.isAdmin ? 'admin' : 'user'} ${user.username} (${user.id})`);
    }),
  );

program
  .command('cleanup')
  .description('expire stale uploads and delete their bytes, drop old upload records, delete orphaned bytes')
  .action(() =>
    withServices(loadConfig(), async (services) => {
      const report = await services.cleanup.run((message) => console.log(message));
      console.log(JSON.stringify(report));
    }),
  );

program.parseAsync().catch((err) => {
  if (err instanceof ConfigError || err instanceof AppError) console.error(err.message);
  else console.error(err);
  process.exit(1);
});
