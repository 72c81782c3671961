import 'reflect-metadata';
import { ConfigError, loadConfig } from './config';
import { serve } from './server';

/** `npm start`: the server, configured from the environment. */
async function main(): Promise<void> {
  await serve(loadConfig());
}

main().catch((err) => {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
});
