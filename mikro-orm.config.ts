import 'reflect-metadata';
import { loadConfig } from './src/config';
import { ormOptions } from './src/db/orm';

/** For the MikroORM CLI (`npx mikro-orm migration:create`): the same database the server would use. */
const config = loadConfig();
export default ormOptions({ databaseUrl: config.databaseUrl, dataDir: config.dataDir }).options;
