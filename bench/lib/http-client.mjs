// One client for every server: node:http over a keep-alive agent, request bodies streamed
// from the source file with fs.createReadStream({ start, end }) so no file is ever held whole.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import http from 'node:http';

const READ_HIGH_WATER_MARK = 256 * 1024;

export class HttpClient {
  constructor(baseUrl, { maxSockets = 16, timeoutMs = 120000 } = {}) {
    this.base = new URL(baseUrl);
    this.timeoutMs = timeoutMs;
    this.agent = new http.Agent({ keepAlive: true, maxSockets, scheduling: 'lifo' });
  }

  /**
   * One request. `body` is a Buffer/string, or `{ head, file, start, length, tail }`: the
   * bytes [start, start + length) of `file`, framed by the optional head and tail buffers.
   * Resolves with { status, headers, text } once the whole answer is read.
   */
  request({ method = 'POST', path, headers = {}, body }) {
    let contentLength;
    let streamed;
    if (body === undefined) contentLength = 0;
    else if (typeof body === 'string' || Buffer.isBuffer(body)) {
      body = Buffer.from(body);
      contentLength = body.length;
    } else {
      streamed = { head: Buffer.alloc(0), tail: Buffer.alloc(0), ...body };
      contentLength = streamed.head.length + streamed.length + streamed.tail.length;
    }
    return new Promise((resolve, reject) => {
      const req = http.request({
        agent: this.agent,
        host: this.base.hostname,
        port: this.base.port,
        method,
        path,
        headers: { ...headers, 'content-length': String(contentLength) },
      });
      let source;
      // A server that goes quiet for this long fails the request instead of hanging the bench.
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`no activity on ${method} ${path} for ${this.timeoutMs / 1000} s`)));
      req.on('error', (err) => {
        source?.destroy();
        reject(err);
      });
      req.on('response', (res) => {
        const parts = [];
        res.on('data', (d) => parts.push(d));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(parts).toString('utf8') }));
      });
      if (!streamed) return req.end(body);
      if (streamed.head.length) req.write(streamed.head);
      if (streamed.length === 0) return req.end(streamed.tail);
      source = createReadStream(streamed.file, {
        start: streamed.start,
        end: streamed.start + streamed.length - 1,
        highWaterMark: READ_HIGH_WATER_MARK,
      });
      source.on('error', (err) => req.destroy(err));
      source.on('end', () => req.end(streamed.tail));
      source.pipe(req, { end: false });
    });
  }

  close() {
    this.agent.destroy();
  }
}

export class GraphQLError extends Error {
  constructor(errors, status) {
    super(errors.map((e) => `${e.extensions?.code ?? 'ERROR'}: ${e.message}`).join('; ') + ` (HTTP ${status})`);
    this.errors = errors;
  }
}

/** The upload server's GraphQL API, as API.md describes it. */
export class GraphQLApi {
  constructor(http, token) {
    this.http = http;
    this.token = token;
  }

  headers() {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  parse({ status, text }) {
    let payload;
    try {
      payload = JSON.parse(text);
    } catch {
      throw new Error(`HTTP ${status}: not JSON: ${text.slice(0, 300)}`);
    }
    if (payload.errors?.length) throw new GraphQLError(payload.errors, status);
    if (status !== 200 || !payload.data) throw new Error(`HTTP ${status}: ${text.slice(0, 300)}`);
    return payload.data;
  }

  async query(query, variables = {}) {
    const res = await this.http.request({
      path: '/graphql',
      headers: { 'content-type': 'application/json', ...this.headers() },
      body: JSON.stringify({ query, variables }),
    });
    return this.parse(res);
  }

  async login(username, password) {
    const { login } = await this.query('mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }', {
      u: username,
      p: password,
    });
    return new GraphQLApi(this.http, login.token);
  }

  /** `partSize`: an upload in parts (uploadPart), every part but the last exactly that long. */
  async startUpload(filename, totalSize, { partSize } = {}) {
    const { startUpload } = await this.query(
      'mutation($input: StartUploadInput!) { startUpload(input: $input) { id offset status partSize partCount } }',
      { input: { filename, totalSize, mimeType: 'application/octet-stream', ...(partSize === undefined ? {} : { partSize }) } },
    );
    return startUpload;
  }

  /**
   * A GraphQL multipart request (operations, map, then the file part) around the file range:
   * `query` takes the file as $chunk, `variables` are the others.
   */
  async multipart(query, variables, file, start, length) {
    const boundary = `----bench${randomBytes(12).toString('hex')}`;
    const operations = JSON.stringify({ query, variables: { ...variables, chunk: null } });
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${operations}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.chunk"]}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="chunk.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const res = await this.http.request({
      path: '/graphql',
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'apollo-require-preflight': 'true', ...this.headers() },
      body: { head, file, start, length, tail },
    });
    return this.parse(res);
  }

  async uploadChunk(uploadId, offset, file, start, length) {
    const query =
      'mutation($id: ID!, $offset: SafeInt!, $chunk: Upload!) { uploadChunk(uploadId: $id, offset: $offset, chunk: $chunk) { offset status } }';
    return (await this.multipart(query, { id: uploadId, offset }, file, start, length)).uploadChunk;
  }

  /** Part `partNumber` (from 1) of an upload in parts; answers the upload's contiguous `offset` after it. */
  async uploadPart(uploadId, partNumber, file, start, length) {
    const query =
      'mutation($id: ID!, $n: Int!, $chunk: Upload!) { uploadPart(uploadId: $id, partNumber: $n, chunk: $chunk) { offset status } }';
    return (await this.multipart(query, { id: uploadId, n: partNumber }, file, start, length)).uploadPart;
  }

  async completeUpload(uploadId, md5) {
    const { completeUpload } = await this.query(
      'mutation($id: ID!, $md5: String!) { completeUpload(uploadId: $id, md5: $md5) { id size md5 } }',
      { id: uploadId, md5 },
    );
    return completeUpload;
  }

  async file(id) {
    return (await this.query('query($id: ID!) { file(id: $id) { id size md5 } }', { id })).file;
  }

  async deleteFile(id) {
    return (await this.query('mutation($id: ID!) { deleteFile(id: $id) }', { id })).deleteFile;
  }
}

/**
 * A tus 1.0.0 server at `path` (our /tus/, or the @tus/server reference): creation, then
 * PATCHes with the bytes. tus-js-client sends the same requests.
 */
export class TusApi {
  constructor(http, { path, token }) {
    this.http = http;
    this.path = path;
    this.token = token;
  }

  headers() {
    return { 'tus-resumable': '1.0.0', ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) };
  }

  /** POST: a new upload of `length` bytes; resolves with the path of its URL. */
  async create(filename, length) {
    const res = await this.http.request({
      method: 'POST',
      path: this.path,
      headers: { ...this.headers(), 'upload-length': String(length), 'upload-metadata': `filename ${Buffer.from(filename).toString('base64')}` },
    });
    if (res.status !== 201 || !res.headers.location) throw new Error(`tus POST ${this.path}: HTTP ${res.status}: ${res.text.slice(0, 300)}`);
    return new URL(res.headers.location, this.http.base).pathname;
  }

  /** PATCH: the bytes [start, start + length) of `file` at `offset`; resolves with the Upload-Offset answered. */
  async patch(uploadPath, offset, file, start, length) {
    const res = await this.http.request({
      method: 'PATCH',
      path: uploadPath,
      headers: { ...this.headers(), 'content-type': 'application/offset+octet-stream', 'upload-offset': String(offset) },
      body: { file, start, length },
    });
    if (res.status !== 204) throw new Error(`tus PATCH ${uploadPath}: HTTP ${res.status}: ${res.text.slice(0, 300)}`);
    return { offset: Number(res.headers['upload-offset']) };
  }
}

/** A baseline server (raw-http, raw-safe): the raw body at ?offset=. */
export class BaselineApi {
  constructor(http) {
    this.http = http;
  }

  async append(name, offset, file, start, length) {
    const res = await this.http.request({
      path: `/upload?id=${encodeURIComponent(name)}&offset=${offset}`,
      headers: { 'content-type': 'application/octet-stream' },
      body: { file, start, length },
    });
    if (res.status !== 200) throw new Error(`baseline: HTTP ${res.status}: ${res.text.slice(0, 300)}`);
    return JSON.parse(res.text);
  }
}
