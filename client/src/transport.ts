import { UploadError } from './errors.js';
import type { TypedDocumentString } from './generated/graphql.js';

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface TransportOptions {
  /** The server's origin, e.g. `http://127.0.0.1:4000`; '' in a page served by the server itself. */
  url: string;
  token?: string;
  /** Logs in again with these when the token is refused (expired, password changed). */
  credentials?: { username: string; password: string };
  fetch?: FetchLike;
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

const LOGIN = `mutation($username: String!, $password: String!) { login(username: $username, password: $password) { token } }`;

/**
 * GraphQL over HTTP for the SDK: JSON requests, and multipart requests (the GraphQL multipart
 * request spec) for a chunk. Errors become UploadError with the server's code.
 */
export class GraphQLTransport {
  readonly baseUrl: string;
  token: string | undefined;
  private readonly credentials?: { username: string; password: string };
  private readonly fetchImpl: FetchLike;

  constructor(options: TransportOptions) {
    this.baseUrl = options.url.replace(/\/+$/, '');
    this.token = options.token;
    this.credentials = options.credentials;
    // Bound: a browser's fetch throws "Illegal invocation" when called as a method of another object.
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
  }

  get endpoint(): string {
    return `${this.baseUrl}/graphql`;
  }

  /** A path from the API (a File's downloadUrl) as an absolute URL, or as given in a same-origin page. */
  resolve(path: string): string {
    return this.baseUrl ? new URL(path, `${this.baseUrl}/`).toString() : path;
  }

  async login(username: string, password: string, signal?: AbortSignal): Promise<string> {
    const data = await this.send<{ login: { token: string } }>(() => this.jsonBody(LOGIN, { username, password }), signal, false);
    this.token = data.login.token;
    return this.token;
  }

  request<R, V>(document: TypedDocumentString<R, V>, variables: V, signal?: AbortSignal): Promise<R> {
    return this.send<R>(() => this.jsonBody(document.toString(), variables), signal);
  }

  /** A multipart request whose variable `fileVariable` is the given bytes. */
  requestWithFile<R, V>(document: TypedDocumentString<R, V>, variables: V, fileVariable: keyof V & string, file: Blob, signal?: AbortSignal): Promise<R> {
    return this.send<R>(() => {
      const form = new FormData();
      form.append('operations', JSON.stringify({ query: document.toString(), variables: { ...variables, [fileVariable]: null } }));
      form.append('map', JSON.stringify({ 0: [`variables.${fileVariable}`] }));
      form.append('0', file, 'chunk.bin');
      // CSRF prevention: the server refuses multipart requests without this header.
      return { body: form, headers: { 'apollo-require-preflight': 'true' } };
    }, signal);
  }

  private jsonBody(query: string, variables: unknown) {
    return { body: JSON.stringify({ query, variables }), headers: { 'content-type': 'application/json' } };
  }

  private async send<R>(
    build: () => { body: string | FormData; headers: Record<string, string> },
    signal: AbortSignal | undefined,
    authenticate = true,
  ): Promise<R> {
    try {
      return await this.sendOnce<R>(build(), signal, authenticate);
    } catch (err) {
      // An expired token: log in again once, if we know how, and repeat the request.
      if (!(authenticate && this.credentials && err instanceof UploadError && err.code === 'UNAUTHENTICATED')) throw err;
      await this.login(this.credentials.username, this.credentials.password, signal);
      return this.sendOnce<R>(build(), signal, authenticate);
    }
  }

  private async sendOnce<R>(request: { body: string | FormData; headers: Record<string, string> }, signal: AbortSignal | undefined, authenticate: boolean): Promise<R> {
    const headers: Record<string, string> = { ...request.headers };
    if (authenticate && this.token) headers.authorization = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await this.fetchImpl(this.endpoint, { method: 'POST', headers, body: request.body, signal });
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      throw new UploadError('NETWORK_ERROR', `Could not reach ${this.endpoint}: ${(err as Error).message}`, {}, undefined, { cause: err });
    }
    let body: GraphQLResponse<R>;
    try {
      body = (await res.json()) as GraphQLResponse<R>;
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      throw new UploadError('HTTP_ERROR', `${this.endpoint} answered HTTP ${res.status} without a GraphQL body.`, {}, res.status, { cause: err });
    }
    const first = body.errors?.[0];
    if (first) {
      const code = typeof first.extensions?.code === 'string' ? first.extensions.code : res.ok ? 'GRAPHQL_ERROR' : 'HTTP_ERROR';
      throw new UploadError(code, first.message, first.extensions ?? {}, res.status);
    }
    if (!res.ok || body.data == null) {
      throw new UploadError('HTTP_ERROR', `${this.endpoint} answered HTTP ${res.status} without data.`, {}, res.status);
    }
    return body.data;
  }
}
