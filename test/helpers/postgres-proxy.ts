import net from 'node:net';
import { createTestDatabase } from './database';
import { startServer, type TestServer } from './server';

interface ProxiedConnection {
  client: net.Socket;
  upstream: net.Socket;
  /** The first bytes the client sent: its startup message, with its application_name. */
  startup: Buffer;
}

/** What a startup message may take; more is never needed to find application_name. */
const STARTUP_BYTES = 1024;

/**
 * A TCP proxy in front of the test PostgreSQL: `down()` makes the database vanish for whoever
 * connects through it (connections cut, new ones refused), `up()` brings it back on the same
 * port; `cut()` ends the client side of every open connection, as a server that crashed would;
 * `silence(applicationName)` stops the connections of that application dead without closing
 * them, as a network path that drops everything (no FIN, no RST) would.
 */
export async function postgresProxy(target: URL) {
  const connections = new Set<ProxiedConnection>();
  let server: net.Server | undefined;
  let port = 0;
  const up = async () => {
    if (server?.listening) return;
    server = net.createServer((client) => {
      const upstream = net.connect(Number(target.port || 5432), target.hostname);
      const connection: ProxiedConnection = { client, upstream, startup: Buffer.alloc(0) };
      connections.add(connection);
      const noteStartup = (data: Buffer) => {
        connection.startup = Buffer.concat([connection.startup, data]);
        if (connection.startup.length >= STARTUP_BYTES) client.off('data', noteStartup);
      };
      client.on('data', noteStartup);
      for (const socket of [client, upstream]) {
        socket.on('close', () => connections.delete(connection));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  };
  await up();
  return {
    url(database: URL): string {
      const proxied = new URL(database);
      proxied.hostname = '127.0.0.1';
      proxied.port = String(port);
      return proxied.toString();
    },
    up,
    cut() {
      for (const { client, upstream } of connections) {
        client.end();
        upstream.end();
      }
    },
    /** How many connections of `applicationName` it silenced. */
    silence(applicationName: string): number {
      let silenced = 0;
      for (const connection of connections) {
        if (!connection.startup.includes(applicationName)) continue;
        const { client, upstream } = connection;
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.removeAllListeners('data').pause();
        upstream.removeAllListeners('data').pause();
        silenced++;
      }
      return silenced;
    },
    async down() {
      if (!server?.listening) return;
      const closed = new Promise((resolve) => server!.close(resolve));
      for (const { client, upstream } of connections) {
        client.destroy();
        upstream.destroy();
      }
      await closed;
    },
  };
}

export type PostgresProxy = Awaited<ReturnType<typeof postgresProxy>>;

/**
 * A test server on a database of its own that it reaches through a proxy, so a test can silence
 * or cut its connections. `close` stops the server, the proxy and drops the database.
 */
export async function startServerBehindProxy(env: Record<string, string> = {}): Promise<{ server: TestServer; proxy: PostgresProxy; close(): Promise<void> }> {
  const proxy = await postgresProxy(new URL(process.env.TEST_DATABASE_URL!));
  const database = await createTestDatabase();
  const server = await startServer({ ...env, DATABASE_URL: proxy.url(new URL(database.url!)) }).catch(async (err: unknown) => {
    await proxy.down();
    await database.drop();
    throw err;
  });
  return {
    server,
    proxy,
    async close() {
      await server.close();
      await proxy.down();
      await database.drop();
    },
  };
}
