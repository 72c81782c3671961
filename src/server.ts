import http from 'node:http';
import { createApp } from './app';
import { HTTP_SERVER_OPTIONS } from './http/request-guards';
import type { Config } from './config';
import { describeDatabase, StartupError } from './startup';

/**
 * Runs the server until SIGTERM or SIGINT, then lets requests in flight finish.
 *
 * The port is bound before the database is opened: a taken port must stop the start before it
 * creates the first admin and prints its generated password, which no later start would show.
 */
export async function serve(config: Config): Promise<void> {
  const server = await bind(config.port, config.host);
  let app: Awaited<ReturnType<typeof createApp>>;
  try {
    app = await createApp(config, undefined, { server });
  } catch (err) {
    server.close();
    throw err;
  }
  const url = await app.listen();
  app.log.info(
    { url, page: `${url}/`, graphql: `${url}/graphql`, database: describeDatabase(config), dataDir: config.dataDir },
    `listening: the upload page at ${url}/, GraphQL at ${url}/graphql`,
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

/** Listens at once; until the app takes over, every request is told to come back shortly. */
function bind(port: number, host: string): Promise<http.Server> {
  const server = http.createServer(HTTP_SERVER_OPTIONS, (_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
    res.end(JSON.stringify({ errors: [{ message: 'The server is starting.', extensions: { code: 'SERVICE_UNAVAILABLE' } }] }));
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const where = `${host}:${port}`;
      if (err.code === 'EADDRINUSE') {
        reject(new StartupError(`Port ${port} on ${host} is already in use (another server running?): stop that process, or set PORT to a free port.`));
      } else if (err.code === 'EACCES') {
        reject(new StartupError(`Not allowed to listen on ${where}: ports below 1024 need privileges; set PORT to 1024 or above.`));
      } else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') {
        reject(new StartupError(`Cannot listen on ${where}: HOST is not an address of this machine; set HOST (e.g. 127.0.0.1 or 0.0.0.0).`));
      } else {
        reject(err);
      }
    });
    server.listen(port, host, () => resolve(server));
  });
}
