import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

/** One subscription's messages as they arrive, and how it ended. */
export interface Recording<T = any> {
  events: T[];
  errors: unknown[];
  /** Resolves when the server completes the subscription (or it fails). */
  ended: Promise<void>;
  stop(): void;
}

/** A graphql-ws client (graphql-transport-ws) for the server at `httpUrl`, authenticated with `authorization`. */
export function wsClient(httpUrl: string, authorization: string | undefined): Client & { closed: Promise<{ code: number; reason: string }> } {
  let closed!: (event: { code: number; reason: string }) => void;
  const closedPromise = new Promise<{ code: number; reason: string }>((resolve) => (closed = resolve));
  const client = createClient({
    url: `${httpUrl.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: authorization === undefined ? {} : { authorization },
    retryAttempts: 0,
    lazy: false,
    // The test's own errors are in the recordings; the client's log would only repeat them.
    onNonLazyError: () => {},
    on: { closed: (event) => closed({ code: (event as CloseEvent).code, reason: (event as CloseEvent).reason }) },
  });
  return Object.assign(client, { closed: closedPromise });
}

export function record<T = any>(client: Client, query: string, variables: Record<string, unknown> = {}): Recording<T> {
  const events: T[] = [];
  const errors: unknown[] = [];
  let stop = () => {};
  const ended = new Promise<void>((resolve) => {
    stop = client.subscribe<T>(
      { query, variables },
      {
        next: (result) => {
          if (result.errors) errors.push(...result.errors);
          else events.push(result.data as T);
        },
        error: (err) => {
          // An error message carries a list of GraphQL errors; a failed connection, an event.
          if (Array.isArray(err)) errors.push(...err);
          else errors.push(err);
          resolve();
        },
        complete: () => resolve(),
      },
    );
  });
  return { events, errors, ended, stop: () => stop() };
}
