import 'reflect-metadata';
import { ConfigError, loadConfig } from './config';
import { serve } from './server';
import { StartupError } from './startup';

/** `npm start`: the server, configured from the environment. */
async function main(): Promise<void> {
  await serve(loadConfig());
}

main().catch((err) => {
  // Known reasons in their own words, one line each; anything else with its stack.
  console.error(err instanceof ConfigError || err instanceof StartupError ? err.message : err);
  process.exit(1);
});
