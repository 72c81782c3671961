import 'reflect-metadata';
import { loadConfig } from './src/config';
import { ormOptions } from './src/db/orm';

/**
 * For the MikroORM CLI (`npx mikro-orm migration:create`): the same database the server would
 * use. A factory the CLI calls, so importing this file opens no database (the embedded one is
 * created and opened only when a command needs it).
 */
export default () => {
  const config = loadConfig();
  return ormOptions({ databaseUrl: config.databaseUrl, dataDir: config.dataDir }).options;
};
