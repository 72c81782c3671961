import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { multipartHeaders, uploadChunkBody, uploadPartBody, UPLOAD_FIELDS, type Multipart } from './multipart';

export { UPLOAD_FIELDS } from './multipart';

export interface GraphQLError {
  message: string;
  extensions?: { code?: string; [key: string]: unknown };
}

export interface GraphQLResult<T = any> {
  status: number;
  data?: T | null;
  errors?: GraphQLError[];
}

export const FILE_FIELDS = 'id name description size md5 mimeType uploadedAt downloadUrl author { id username }';

export const ME = `{ me { id username } }`;
export const LOGIN = `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token user { id username } } }`;
export const CREATE_USER = `mutation($u: String!, $p: String!, $a: Boolean) { createUser(username: $u, password: $p, isAdmin: $a) { id username isAdmin createdAt } }`;

export function md5(bytes: Buffer): string {
  return createHash('md5').update(bytes).digest('hex');
}

export function randomFile(size: number): Buffer {
  return randomBytes(size);
}

/** A short random tag, for names no other test uses. */
export const tag = (bytes = 3): string => randomBytes(bytes).toString('hex');

/** GET /healthz: its status, 0 when nothing answers within 3 s. */
export async function healthStatus(url: string): Promise<number> {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(3000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** A GraphQL client over real HTTP; clients derived from one share the server's address. */
export class GraphQLClient {
  constructor(
    private readonly target: { url: string },
    readonly token?: string,
  ) {}

  static for(url: string): GraphQLClient {
    return new GraphQLClient({ url });
  }

  get url(): string {
    return this.target.url;
  }

  set url(value: string) {
    this.target.url = value;
  }

  withToken(token: string | undefined): GraphQLClient {
    return new GraphQLClient(this.target, token);
  }

  authHeaders(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  async request<T = any>(query: string, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<GraphQLResult<T>> {
    const res = await fetch(`${this.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.authHeaders(), ...headers },
      body: JSON.stringify({ query, variables }),
    });
    return { status: res.status, ...((await res.json()) as object) };
  }

  /** The data of a request that must succeed. */
  async data<T = any>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const result = await this.request<T>(query, variables);
    assert.equal(result.errors, undefined, `unexpected errors: ${JSON.stringify(result.errors)}`);
    return result.data as T;
  }

  async login(username: string, password: string): Promise<GraphQLClient> {
    const { login } = await this.data(LOGIN, { u: username, p: password });
    return this.withToken(login.token);
  }

  /** Creates a user as this (admin) client and returns a client logged in as them. */
  async newUser(username = `user_${randomBytes(4).toString('hex')}`, isAdmin = false): Promise<GraphQLClient> {
    const password = `pw-${randomBytes(8).toString('hex')}`;
    await this.data(CREATE_USER, { u: username, p: password, a: isAdmin });
    return this.login(username, password);
  }

  startUpload(input: { filename: string; totalSize: number; description?: string; mimeType?: string }) {
    return this.request(`mutation($input: StartUploadInput!) { startUpload(input: $input) { ${UPLOAD_FIELDS} } }`, { input });
  }

  /** startUpload that must succeed: the upload. */
  async start(filename: string, totalSize: number, extra: { description?: string; mimeType?: string } = {}): Promise<any> {
    const result = await this.startUpload({ filename, totalSize, ...extra });
    assert.equal(result.errors, undefined, JSON.stringify(result.errors));
    return result.data.startUpload;
  }

  /**
   * POSTs a multipart body to /graphql with this client's token. `preflight: false` leaves out
   * the apollo-require-preflight header (CSRF prevention refuses such a request).
   */
  async postMultipart(multipart: Multipart, options: { headers?: Record<string, string>; preflight?: boolean; signal?: AbortSignal } = {}): Promise<GraphQLResult> {
    const res = await fetch(`${this.url}/graphql`, {
      method: 'POST',
      headers: { ...multipartHeaders(multipart.contentType, options.preflight ?? true), ...this.authHeaders(), ...options.headers },
      body: multipart.body,
      signal: options.signal,
    });
    return { status: res.status, ...((await res.json()) as object) };
  }

  /** A real GraphQL multipart uploadChunk request (operations, map, then the chunk). */
  uploadChunk(
    uploadId: string,
    offset: number,
    chunk: Buffer,
    options: { chunkMd5?: string; headers?: Record<string, string>; preflight?: boolean } = {},
  ): Promise<GraphQLResult> {
    return this.postMultipart(uploadChunkBody(uploadId, offset, chunk, options), options);
  }

  /** A real GraphQL multipart uploadPart request. */
  uploadPart(uploadId: string, partNumber: number, part: Buffer, options: { chunkMd5?: string; signal?: AbortSignal } = {}): Promise<GraphQLResult> {
    return this.postMultipart(uploadPartBody(uploadId, partNumber, part, options), options);
  }

  complete(uploadId: string, fileMd5: string, description?: string) {
    return this.request(`mutation($id: ID!, $md5: String!, $d: String) { completeUpload(uploadId: $id, md5: $md5, description: $d) { ${FILE_FIELDS} } }`, {
      id: uploadId,
      md5: fileMd5,
      d: description,
    });
  }

  abort(uploadId: string) {
    return this.request(`mutation($id: ID!) { abortUpload(uploadId: $id) { ${UPLOAD_FIELDS} } }`, { id: uploadId });
  }

  async getUpload(uploadId: string): Promise<any> {
    return (await this.data(`query($id: ID!) { upload(id: $id) { ${UPLOAD_FIELDS} } }`, { id: uploadId })).upload;
  }

  /** GET `path` (with this client's token unless `authenticated` is false). */
  async download(path: string, headers: Record<string, string> = {}, authenticated = true): Promise<{ status: number; headers: Headers; body: Buffer }> {
    const res = await fetch(`${this.url}${path}`, { headers: { ...(authenticated ? this.authHeaders() : {}), ...headers } });
    return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
  }
}
