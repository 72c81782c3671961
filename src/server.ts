import { createApp } from './app';
import type { Config } from './config';

/** Runs the server until SIGTERM or SIGINT, then lets requests in flight finish. */
export async function serve(config: Config): Promise<void> {
  const app = await createApp(config);
  const url = await app.listen();
  app.log.info(
    { url, database: config.databaseUrl ? 'postgresql' : `embedded (${config.dataDir}/db)`, dataDir: config.dataDir },
    'listening',
  );
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'stopping: finishing requests in flight');
    await app.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}
