import type { Client, ClientOptions } from 'graphql-ws';
import {
  LibraryChangedDocument,
  MyUploadsChangedDocument,
  UploadProgressDocument,
  type LibraryChangedSubscription,
  type TypedDocumentString,
  type UploadStateFragment,
} from './generated/graphql.js';
import type { GraphQLTransport } from './transport.js';

/** How a platform makes a graphql-ws client (Node: the package; a browser: its ES module build). */
export type CreateWsClient = (options: ClientOptions) => Client | Promise<Client>;

export type LibraryChange = LibraryChangedSubscription['libraryChanged'];

export interface SubscriptionHandlers<T> {
  next(value: T): void;
  /** GraphQL errors (NOT_FOUND for an upload that is not yours), or the connection refused for good. */
  error?(error: unknown): void;
  /** The server ended the subscription (uploadProgress: after a final status). */
  complete?(): void;
}

/** The server's close code for a token it refused at connection: reconnecting cannot help. */
const FORBIDDEN = 4403;

/**
 * Typed GraphQL subscriptions over one WebSocket (graphql-transport-ws), with the client's
 * token, at the API's /graphql. The socket opens with the first subscription and closes a
 * moment after the last one ends; it reconnects by itself (with the current token) unless the
 * server refused the token.
 */
export class LiveUpdates {
  private client?: Promise<Client>;
  private readonly reconnectListeners = new Set<() => void>();

  constructor(
    private readonly transport: GraphQLTransport,
    private readonly createWsClient: CreateWsClient,
    private readonly options: Partial<ClientOptions> = {},
  ) {}

  /** Any typed subscription from generated/graphql.ts. Returns the function that ends it. */
  subscribe<R, V>(document: TypedDocumentString<R, V>, variables: V, handlers: SubscriptionHandlers<R>): () => void {
    let stop: (() => void) | undefined;
    let stopped = false;
    this.connect().then(
      (client) => {
        if (stopped) return;
        stop = client.subscribe<R>(
          { query: document.toString(), variables: variables as Record<string, unknown> },
          {
            next: (result) => {
              if (result.errors?.length) handlers.error?.(result.errors);
              else if (result.data) handlers.next(result.data as R);
            },
            error: (error) => handlers.error?.(error),
            complete: () => handlers.complete?.(),
          },
        );
      },
      (error: unknown) => handlers.error?.(error),
    );
    return () => {
      stopped = true;
      stop?.();
    };
  }

  /** One of your uploads as it moves, until a final status. */
  uploadProgress(uploadId: string, handlers: SubscriptionHandlers<UploadStateFragment>): () => void {
    return this.subscribe(UploadProgressDocument, { uploadId }, { ...handlers, next: (data) => handlers.next(data.uploadProgress) });
  }

  /** All your uploads as they move, from every device: each one started, its progress, its final status. */
  myUploadsChanged(handlers: SubscriptionHandlers<UploadStateFragment>): () => void {
    return this.subscribe(MyUploadsChangedDocument, {}, { ...handlers, next: (data) => handlers.next(data.myUploadsChanged) });
  }

  /** Every change to the library (ADDED, UPDATED, DELETED, READY, REJECTED), from any instance. */
  libraryChanged(handlers: SubscriptionHandlers<LibraryChange>): () => void {
    return this.subscribe(LibraryChangedDocument, {}, { ...handlers, next: (data) => handlers.next(data.libraryChanged) });
  }

  /**
   * Calls `listener` each time the socket connects again after it dropped (the server restarted,
   * or closed it with 1013 because events were missed): the subscriptions go on by themselves,
   * but what happened meanwhile was not sent, so read afresh what you show. Returns the
   * function that removes it.
   */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /** Ends every subscription and closes the socket. */
  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await (await client?.catch(() => undefined))?.dispose();
  }

  private connect(): Promise<Client> {
    this.client ??= Promise.resolve(
      this.createWsClient({
        url: webSocketUrl(this.transport.resolve('/graphql')),
        // Read at each (re)connection: a token renewed meanwhile is the one sent.
        connectionParams: () => (this.transport.token ? { authorization: `Bearer ${this.transport.token}` } : {}),
        retryAttempts: Infinity,
        shouldRetry: (event) => (event as { code?: number } | undefined)?.code !== FORBIDDEN,
        ...this.options,
        on: {
          ...this.options.on,
          connected: (socket, payload, wasRetry) => {
            this.options.on?.connected?.(socket, payload, wasRetry);
            if (wasRetry) for (const listener of [...this.reconnectListeners]) listener();
          },
        },
      }),
    );
    return this.client;
  }
}

/** http(s)://host/graphql as ws(s)://host/graphql; a path is taken relative to the page. */
export function webSocketUrl(httpUrl: string): string {
  const page = (globalThis as { location?: { href: string } }).location?.href;
  const url = new URL(httpUrl, page);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}
