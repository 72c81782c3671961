import type { PGlite } from '@electric-sql/pglite';
import type { Logger } from 'pino';
import { dropSocket } from '../db/pg-dialect';
import { CHANNELS } from './channels';

export type OnNotification = (channel: string, payload: string) => void;

/**
 * Whether every notification reaches this process: true once each LISTEN is in place (after
 * every connect), false as soon as the connection is found lost and on close. Notifications sent
 * while it is false are never delivered.
 */
export type OnListening = (listening: boolean) => void;

/** The one connection of a process that LISTENs, whatever the number of subscribers. */
export interface NotificationListener {
  start(onNotification: OnNotification, onReconnect: () => void, onListening?: OnListening): Promise<void>;
  close(): Promise<void>;
}

/** What the listening connection calls itself in pg_stat_activity. */
export const LISTENER_APPLICATION_NAME = 'upload-server events';

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 10_000;
/**
 * A connection can die without a word (a NAT or firewall dropping it: no FIN, no RST). Silence
 * cannot tell that from no notifications, so the listener asks: an answer missing for
 * HEARTBEAT_TIMEOUT_MS counts as a lost connection, found within about 10 s instead of never.
 */
const HEARTBEAT_MS = 5_000;
const HEARTBEAT_TIMEOUT_MS = 5_000;
/** A connect over such a path would wait for ever. */
const CONNECT_TIMEOUT_MS = 10_000;
/** And so would a polite goodbye: past this, its socket is closed. */
const END_TIMEOUT_MS = 2_000;

/** Ends the client, closing its socket if the server does not acknowledge in time. */
async function endClient(client: import('pg').Client): Promise<void> {
  const drop = setTimeout(() => dropSocket(client), END_TIMEOUT_MS);
  try {
    await client.end();
  } catch {
    // Ending a client whose connection already failed: nothing left to close.
  } finally {
    clearTimeout(drop);
  }
}

/**
 * A dedicated `pg` connection outside the ORM's pool (a pooled connection would be handed to
 * queries and lose its LISTENs). When it drops (PostgreSQL restarting, say) it reconnects with
 * a growing delay and tells the hub, which refreshes what its subscribers may have missed.
 */
export class PgListener implements NotificationListener {
  private client?: import('pg').Client;
  private closing = false;
  private retry?: NodeJS.Timeout;
  private delayMs = RECONNECT_MIN_MS;

  constructor(
    private readonly databaseUrl: string,
    private readonly log: Logger,
  ) {}

  private onListening: OnListening = () => {};

  async start(onNotification: OnNotification, onReconnect: () => void, onListening: OnListening = () => {}): Promise<void> {
    this.onListening = onListening;
    const connect = async (reconnecting: boolean): Promise<void> => {
      if (this.closing) return;
      const { Client } = await import('pg');
      const client = new Client({
        connectionString: this.databaseUrl,
        application_name: LISTENER_APPLICATION_NAME,
        query_timeout: HEARTBEAT_TIMEOUT_MS,
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
        keepAlive: true,
      });
      let lost = false;
      let heartbeat: NodeJS.Timeout | undefined;
      const onLost = (err?: Error) => {
        clearInterval(heartbeat);
        if (lost || this.closing) return;
        lost = true;
        if (this.client === client) this.client = undefined;
        onListening(false);
        void endClient(client);
        this.log.warn({ err, retryInMs: this.delayMs }, 'the event listener lost its database connection; reconnecting');
        this.retry = setTimeout(() => void connect(true), this.delayMs).unref();
        this.delayMs = Math.min(this.delayMs * 2, RECONNECT_MAX_MS);
      };
      client.on('notification', (message) => onNotification(message.channel, message.payload ?? ''));
      client.on('error', onLost);
      client.on('end', () => onLost());
      try {
        await client.connect();
        for (const channel of CHANNELS) await client.query(`listen ${channel}`);
      } catch (err) {
        onLost(err as Error);
        return;
      }
      if (this.closing) {
        await endClient(client);
        return;
      }
      this.client = client;
      this.delayMs = RECONNECT_MIN_MS;
      heartbeat = setInterval(() => void client.query('select 1').catch(onLost), HEARTBEAT_MS).unref();
      onListening(true);
      if (reconnecting) {
        this.log.info('the event listener is connected again');
        onReconnect();
      }
    };
    await connect(false);
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.retry);
    this.onListening(false);
    const client = this.client;
    this.client = undefined;
    if (client) await endClient(client);
  }
}

/** The embedded database tells its own process: a single process is the whole system. */
export class PGliteListener implements NotificationListener {
  private unlisten: (() => Promise<void>)[] = [];
  private onListening: OnListening = () => {};

  constructor(private readonly pglite: PGlite) {}

  /** The database is in this process: once listening, it stays so until closed. */
  async start(onNotification: OnNotification, _onReconnect: () => void, onListening: OnListening = () => {}): Promise<void> {
    this.onListening = onListening;
    for (const channel of CHANNELS) {
      this.unlisten.push(await this.pglite.listen(channel, (payload) => onNotification(channel, payload)));
    }
    onListening(true);
  }

  async close(): Promise<void> {
    this.onListening(false);
    const unlisten = this.unlisten;
    this.unlisten = [];
    if (this.pglite.closed) return;
    for (const stop of unlisten) await stop().catch(() => {});
  }
}
