import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';

export interface GraphQLError {
  message: string;
  extensions?: { code?: string; [key: string]: unknown };
}

export interface GraphQLResult<T = any> {
  status: number;
  data?: T | null;
  errors?: GraphQLError[];
}

export const UPLOAD_FIELDS = 'id filename description mimeType totalSize offset status createdAt expiresAt chunkSize maxChunkSize';
export const FILE_FIELDS = 'id name description size md5 mimeType uploadedAt downloadUrl author { id username }';

export function md5(bytes: Buffer): string {
  return createHash('md5').update(bytes).digest('hex');
}

export function randomFile(size: number): Buffer {
  return randomBytes(size);
}

/** Asserts a GraphQL error with the API.md code, and returns it for further checks. */
export function expectCode(result: GraphQLResult, code: string): GraphQLError {
  const codes = (result.errors ?? []).map((e) => e.extensions?.code);
  assert.deepEqual(codes, [code], `expected ${code}, got ${JSON.stringify(result.errors ?? result.data)}`);
  return result.errors![0];
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
    const { login } = await this.data(`mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }`, {
      u: username,
      p: password,
    });
    return this.withToken(login.token);
  }

  /** Creates a user as this (admin) client and returns a client logged in as them. */
  async newUser(username = `user_${randomBytes(4).toString('hex')}`, isAdmin = false): Promise<GraphQLClient> {
    const password = `pw-${randomBytes(8).toString('hex')}`;
    await this.data(`mutation($u: String!, $p: String!, $a: Boolean) { createUser(username: $u, password: $p, isAdmin: $a) { id } }`, {
      u: username,
      p: password,
      a: isAdmin,
    });
    return this.login(username, password);
  }

  startUpload(input: { filename: string; totalSize: number; description?: string; mimeType?: string }) {
    return this.request(`mutation($input: StartUploadInput!) { startUpload(input: $input) { ${UPLOAD_FIELDS} } }`, { input });
  }

  async start(filename: string, totalSize: number, extra: { description?: string; mimeType?: string } = {}): Promise<any> {
    const result = await this.startUpload({ filename, totalSize, ...extra });
    assert.equal(result.errors, undefined, JSON.stringify(result.errors));
    return result.data.startUpload;
  }

  /** A real GraphQL multipart request (operations, map, then the file). */
  async uploadChunk(uploadId: string, offset: number, chunk: Buffer, options: { chunkMd5?: string; headers?: Record<string, string> } = {}): Promise<GraphQLResult> {
    const form = new FormData();
    form.append(
      'operations',
      JSON.stringify({
        query: `mutation($id: ID!, $offset: SafeInt!, $chunk: Upload!, $chunkMd5: String) {
          uploadChunk(uploadId: $id, offset: $offset, chunk: $chunk, chunkMd5: $chunkMd5) { ${UPLOAD_FIELDS} } }`,
        variables: { id: uploadId, offset, chunk: null, chunkMd5: options.chunkMd5 ?? null },
      }),
    );
    form.append('map', JSON.stringify({ 0: ['variables.chunk'] }));
    form.append('0', new Blob([chunk]), 'chunk.bin');
    const res = await fetch(`${this.url}/graphql`, {
      method: 'POST',
      headers: { 'apollo-require-preflight': 'true', ...this.authHeaders(), ...options.headers },
      body: form,
    });
    return { status: res.status, ...((await res.json()) as object) };
  }

  complete(uploadId: string, fileMd5: string, description?: string) {
    return this.request(`mutation($id: ID!, $md5: String!, $d: String) { completeUpload(uploadId: $id, md5: $md5, description: $d) { ${FILE_FIELDS} } }`, {
      id: uploadId,
      md5: fileMd5,
      d: description,
    });
  }

  async getUpload(uploadId: string): Promise<any> {
    return (await this.data(`query($id: ID!) { upload(id: $id) { ${UPLOAD_FIELDS} } }`, { id: uploadId })).upload;
  }

  /** The whole upload protocol: start, chunks in order, complete. Returns the File. */
  async uploadFile(bytes: Buffer, filename: string, chunkSize = 256 * 1024, description?: string): Promise<any> {
    const upload = await this.start(filename, bytes.length, { description });
    for (let offset = 0; offset < bytes.length; offset += chunkSize) {
      const result = await this.uploadChunk(upload.id, offset, bytes.subarray(offset, offset + chunkSize));
      assert.equal(result.errors, undefined, JSON.stringify(result.errors));
    }
    const done = await this.complete(upload.id, md5(bytes));
    assert.equal(done.errors, undefined, JSON.stringify(done.errors));
    return done.data.completeUpload;
  }

  async download(path: string, headers: Record<string, string> = {}, authenticated = true): Promise<{ status: number; headers: Headers; body: Buffer }> {
    const res = await fetch(`${this.url}${path}`, { headers: { ...(authenticated ? this.authHeaders() : {}), ...headers } });
    return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
  }
}

/**
 * A chunk request written by hand over a raw socket, for what fetch cannot do: stop half-way,
 * stall, or cut the connection. `send` writes part of the declared chunk.
 */
export function openChunkRequest(client: GraphQLClient, uploadId: string, offset: number) {
  const boundary = `----test${randomBytes(8).toString('hex')}`;
  const operations = JSON.stringify({
    query: `mutation($id: ID!, $offset: SafeInt!, $chunk: Upload!) { uploadChunk(uploadId: $id, offset: $offset, chunk: $chunk) { ${UPLOAD_FIELDS} } }`,
    variables: { id: uploadId, offset, chunk: null },
  });
  const head =
    `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${operations}\r\n` +
    `--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.chunk"]}\r\n` +
    `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="chunk.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  const tail = `\r\n--${boundary}--\r\n`;
  const url = new URL(`${client.url}/graphql`);
  const req = http.request({
    host: url.hostname,
    port: url.port,
    path: url.pathname,
    method: 'POST',
    headers: {
      'content-type': `multipart/form-data; boundary=${boundary}`,
      'apollo-require-preflight': 'true',
      'transfer-encoding': 'chunked',
      ...client.authHeaders(),
    },
  });
  const response = new Promise<GraphQLResult>((resolve, reject) => {
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ...JSON.parse(Buffer.concat(parts).toString()) }));
    });
    req.on('error', reject);
  });
  response.catch(() => {});
  req.write(head);
  return {
    response,
    send(bytes: Buffer): Promise<void> {
      return new Promise((resolve, reject) => req.write(bytes, (err) => (err ? reject(err) : resolve())));
    },
    finish(): Promise<GraphQLResult> {
      req.end(tail);
      return response;
    },
    /** Cuts the connection as a client that vanished would. */
    abort(): void {
      req.destroy();
    },
  };
}

/** Polls until `check` passes or the time runs out (for effects that land asynchronously). */
export async function eventually(check: () => Promise<void> | void, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`, or a failure naming what did not happen within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} (nothing within ${ms} ms)`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Downloads a File with the client's token and asserts its bytes are exactly `bytes`. */
export async function verifyDownload(client: GraphQLClient, fileId: string, bytes: Buffer): Promise<void> {
  const download = await client.download(`/files/${fileId}/content`);
  assert.equal(download.status, 200, `download of ${fileId}`);
  assert.equal(download.body.length, bytes.length, 'downloaded length');
  assert.equal(md5(download.body), md5(bytes), 'the downloaded bytes are the source bytes');
}
