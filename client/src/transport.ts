import { UploadError } from './errors.js';
import type { TypedDocumentString } from './generated/graphql.js';

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** A multipart chunk request: the GraphQL multipart fields, then the file part. */
export interface MultipartRequest {
  url: string;
  headers: Record<string, string>;
  /** The `operations` and `map` fields, in that order, before the file part. */
  fields: [name: string, value: string][];
  /** The file part's field name and bytes. */
  fileField: string;
  file: Uint8Array;
  signal?: AbortSignal;
  /** Called as the file's bytes are handed to the connection, with the count so far. */
  onBytesWritten?: (bytes: number) => void;
}

/**
 * Sends a MultipartRequest and resolves with the answer's status and text. Rejects with an
 * UploadError('NETWORK_ERROR') when the connection fails, and with the signal's reason on abort.
 */
export type MultipartPoster = (request: MultipartRequest) => Promise<{ status: number; text: string }>;

export interface TransportOptions {
  /** The server's origin, e.g. `http://127.0.0.1:4000`; '' in a page served by the server itself. */
  url: string;
  token?: string;
  /** Logs in again with these when the token is refused (expired, password changed). */
  credentials?: { username: string; password: string };
  /**
   * Used for every request. In Node, chunks otherwise go through a streamed node:http request
   * that reports bytes as they are sent; with a custom fetch they are FormData and progress moves
   * once per chunk.
   */
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
  private readonly postMultipart?: MultipartPoster;

  /** `postMultipart`: the platform's way to send a chunk (Node's streamed request); fetch and FormData without. */
  constructor(options: TransportOptions, postMultipart?: MultipartPoster) {
    this.baseUrl = options.url.replace(/\/+$/, '');
    this.token = options.token;
    this.credentials = options.credentials;
    // Bound: a browser's fetch throws "Illegal invocation" when called as a method of another object.
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
    this.postMultipart = options.fetch ? undefined : postMultipart;
  }

  get endpoint(): string {
    return `${this.baseUrl}/graphql`;
  }

  /** A path from the API (a File's downloadUrl) as an absolute URL, or as given in a same-origin page. */
  resolve(path: string): string {
    return this.baseUrl ? new URL(path, `${this.baseUrl}/`).toString() : path;
  }

  async login(username: string, password: string, signal?: AbortSignal): Promise<string> {
    const data = await this.send<{ login: { token: string } }>(() => this.sendJson(LOGIN, { username, password }, signal, false), signal, false);
    this.token = data.login.token;
    return this.token;
  }

  request<R, V>(document: TypedDocumentString<R, V>, variables: V, signal?: AbortSignal): Promise<R> {
    return this.send<R>(() => this.sendJson(document.toString(), variables, signal, true), signal);
  }

  /**
   * A multipart request whose variable `fileVariable` is the given bytes. `onBytesWritten` follows
   * the bytes as they are sent where the platform can tell (Node); in a browser it is not called.
   */
  requestWithFile<R, V>(
    document: TypedDocumentString<R, V>,
    variables: V,
    fileVariable: keyof V & string,
    file: Uint8Array,
    signal?: AbortSignal,
    onBytesWritten?: (bytes: number) => void,
  ): Promise<R> {
    const fields: [string, string][] = [
      ['operations', JSON.stringify({ query: document.toString(), variables: { ...variables, [fileVariable]: null } })],
      ['map', JSON.stringify({ 0: [`variables.${fileVariable}`] })],
    ];
    return this.send<R>(async () => {
      // CSRF prevention: the server refuses multipart requests without this header.
      const headers = this.headers({ 'apollo-require-preflight': 'true' }, true);
      if (this.postMultipart) {
        const { status, text } = await this.postMultipart({ url: this.endpoint, headers, fields, fileField: '0', file, signal, onBytesWritten });
        return this.interpret<R>(status, async () => JSON.parse(text) as unknown, signal);
      }
      const form = new FormData();
      for (const [name, value] of fields) form.append(name, value);
      form.append('0', new Blob([file as Uint8Array<ArrayBuffer>]), 'chunk.bin');
      return this.fetchOnce<R>(form, headers, signal);
    }, signal);
  }

  /**
   * PUTs one part of a direct upload to a presigned URL with exactly the headers given. Never
   * throws for an answer: `ok`, or the status and an UploadError to report and retry with.
   */
  async putPart(
    url: string,
    headers: { name: string; value: string }[],
    body: Uint8Array,
    signal?: AbortSignal,
  ): Promise<{ ok: true } | { ok: false; status?: number; error: UploadError }> {
    try {
      const res = await this.fetchImpl(url, {
        method: 'PUT',
        headers: Object.fromEntries(headers.map((h) => [h.name, h.value])),
        body: body as Uint8Array<ArrayBuffer>,
        signal,
      });
      const text = await res.text();
      if (res.ok) return { ok: true };
      const code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1] ?? 'HTTP_ERROR';
      return { ok: false, status: res.status, error: new UploadError('HTTP_ERROR', `The object store answered HTTP ${res.status} (${code}) to a part.`, { storeCode: code }, res.status) };
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      return { ok: false, error: new UploadError('NETWORK_ERROR', `Could not reach the object store: ${(err as Error).message}`, {}, undefined, { cause: err }) };
    }
  }

  private sendJson<R>(query: string, variables: unknown, signal: AbortSignal | undefined, authenticate: boolean): Promise<R> {
    return this.fetchOnce<R>(JSON.stringify({ query, variables }), this.headers({ 'content-type': 'application/json' }, authenticate), signal);
  }

  private headers(headers: Record<string, string>, authenticate: boolean): Record<string, string> {
    return authenticate && this.token ? { ...headers, authorization: `Bearer ${this.token}` } : headers;
  }

  /** `once` reads the token when called, so a repeat after logging in again carries the new one. */
  private async send<R>(once: () => Promise<R>, signal: AbortSignal | undefined, authenticate = true): Promise<R> {
    try {
      return await once();
    } catch (err) {
      // An expired token: log in again once, if we know how, and repeat the request.
      if (!(authenticate && this.credentials && err instanceof UploadError && err.code === 'UNAUTHENTICATED')) throw err;
      await this.login(this.credentials.username, this.credentials.password, signal);
      return once();
    }
  }

  private async fetchOnce<R>(body: string | FormData, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<R> {
    let res: Response;
    try {
      res = await this.fetchImpl(this.endpoint, { method: 'POST', headers, body, signal });
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      throw new UploadError('NETWORK_ERROR', `Could not reach ${this.endpoint}: ${(err as Error).message}`, {}, undefined, { cause: err });
    }
    return this.interpret<R>(res.status, () => res.json(), signal);
  }

  /** An answer's status and body (parsed by `json`) as the data, or as an UploadError with the server's code. */
  private async interpret<R>(status: number, json: () => Promise<unknown>, signal: AbortSignal | undefined): Promise<R> {
    const ok = status >= 200 && status < 300;
    let body: GraphQLResponse<R>;
    try {
      body = (await json()) as GraphQLResponse<R>;
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      throw new UploadError('HTTP_ERROR', `${this.endpoint} answered HTTP ${status} without a GraphQL body.`, {}, status, { cause: err });
    }
    const first = body?.errors?.[0];
    if (first) {
      const code = typeof first.extensions?.code === 'string' ? first.extensions.code : ok ? 'GRAPHQL_ERROR' : 'HTTP_ERROR';
      throw new UploadError(code, first.message, first.extensions ?? {}, status);
    }
    if (!ok || body?.data == null) {
      throw new UploadError('HTTP_ERROR', `${this.endpoint} answered HTTP ${status} without data.`, {}, status);
    }
    return body.data;
  }
}
