import { ConnectionException } from '@mikro-orm/core';
import { PostgreSqlKnexDialect } from '@mikro-orm/postgresql';
import type { EventEmitter } from 'node:events';

// Kept outside the class: knex runs a transaction's statements on a copy of the dialect made from
// its prototype (makeTxClient), which has none of an instance's fields; only `config` is shared.
/** pg Clients whose socket has closed. */
const endedConnections = new WeakSet<object>();
/** pg Clients dropped because a statement had no answer in time. */
const abandonedConnections = new WeakSet<object>();

interface TimedConfig {
  queryTimeoutMs?: number;
}

/**
 * MikroORM's PostgreSQL dialect for knex, with one addition: failures that come from a lost
 * connection become MikroORM's ConnectionException, a class the error edge recognises
 * (error-edge.ts), even when pg gives them no code.
 *
 * pg reports most of an outage with a code: SQLSTATE 57P01 when the server shuts down or the
 * backend is terminated, 57P03 while it starts, ECONNREFUSED while it is away. But a socket
 * that closes under a query (a crashed server, a proxy or a container gone) fails that query
 * with a plain `Error('Connection terminated unexpectedly')`, and a server that hangs up during
 * the start-up handshake with the same. So: any failure to open a connection, and any failure
 * without a code on a connection that has ended, is a ConnectionException. So is a statement
 * left unanswered past the query timeout (see armQueryTimeout).
 *
 * A subclass handed to knex as its `client` (see orm.ts), not a patch of the shared class.
 */
export class PostgreSqlConnectionAwareDialect extends PostgreSqlKnexDialect {
  /**
   * How long a statement may go unanswered before its connection is dropped (0: for ever). A
   * network path that dies without a word (no FIN, no RST) would otherwise hold the request,
   * and the pooled connection, until TCP gives up, many minutes later. Set once the
   * migrations have run: they may legitimately take longer.
   */
  armQueryTimeout(ms: number): void {
    (this.config as TimedConfig).queryTimeoutMs = ms;
  }

  async acquireRawConnection(): Promise<EventEmitter> {
    let connection: EventEmitter;
    try {
      connection = await super.acquireRawConnection();
    } catch (err) {
      throw asConnectionException(err);
    }
    connection.once('end', () => endedConnections.add(connection));
    return connection;
  }

  async _query(connection: EventEmitter, obj: unknown): Promise<unknown> {
    const timeoutMs = (this.config as TimedConfig).queryTimeoutMs ?? 0;
    const timer = timeoutMs > 0 ? setTimeout(() => abandon(connection), timeoutMs) : undefined;
    try {
      return await super._query(connection, obj);
    } catch (err) {
      if (abandonedConnections.has(connection)) {
        throw new ConnectionException(new Error(`PostgreSQL did not answer within ${timeoutMs / 1000} s: the connection was dropped`));
      }
      if (hasCode(err)) throw err;
      // pg fails the queries of a closed connection on one tick and emits 'end' on the next.
      await new Promise((resolve) => setImmediate(resolve));
      throw endedConnections.has(connection) ? asConnectionException(err) : err;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Closes the socket under the statement: pg fails it, and the pool discards the connection. */
function abandon(connection: EventEmitter): void {
  abandonedConnections.add(connection);
  dropSocket(connection);
}

/**
 * Closes a pg Client's socket at once: its pending statements fail and it emits 'end'. For a
 * peer that no longer answers, where `end()` would wait for a goodbye that never comes.
 */
export function dropSocket(client: object): void {
  (client as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

function hasCode(err: unknown): boolean {
  return typeof (err as { code?: unknown } | null)?.code === 'string';
}

function asConnectionException(err: unknown): ConnectionException {
  if (err instanceof ConnectionException) return err;
  return new ConnectionException(err instanceof Error ? err : new Error(String(err)));
}
