import 'reflect-metadata';
import path from 'node:path';
import { loadConfig } from './src/config';
import { lockEmbeddedDatabase } from './src/db/embedded-lock';
import { ormOptions } from './src/db/orm';

/**
 * For the MikroORM CLI (`npx mikro-orm migration:create`): the same database the server would
 * use. A factory the CLI calls, so importing this file opens no database (the embedded one is
 * created and opened only when a command needs it, and locked first like every opener: a
 * server running on it refuses the CLI). The lock goes with the CLI's process.
 */
export default () => {
  const config = loadConfig();
  if (!config.databaseUrl) lockEmbeddedDatabase(path.join(config.dataDir, 'db'), 'npx mikro-orm');
  return ormOptions({ databaseUrl: config.databaseUrl, dataDir: config.dataDir }).options;
};
