import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { md5, randomFile, type GraphQLClient } from './helpers/client';
import { startServer, type TestServer } from './helpers/server';

/** Multipart requests that break the GraphQL multipart request spec, sent as raw bodies. */
describe('malformed multipart requests', () => {
  let server: TestServer;
  let alice: GraphQLClient;
  let upload: { id: string };
  const stored = randomFile(1000);

  before(async () => {
    server = await startServer({ BODY_TIMEOUT: '5' });
    alice = await server.admin.newUser();
    upload = await alice.start('target.bin', 3000);
    const first = await alice.uploadChunk(upload.id, 0, stored);
    assert.equal(first.errors, undefined, JSON.stringify(first.errors));
  });
  after(() => server?.close());

  const operations = (id: string) =>
    JSON.stringify({
      query: 'mutation($id: ID!, $c: Upload!) { uploadChunk(uploadId: $id, offset: 1000, chunk: $c) { offset } }',
      variables: { id, c: null },
    });

  function body(parts: { name: string; value: string | Buffer; filename?: string }[]): { boundary: string; bytes: Buffer } {
    const boundary = 'xYzBoundary42';
    const pieces: Buffer[] = [];
    for (const part of parts) {
      const disposition = `form-data; name="${part.name}"${part.filename ? `; filename="${part.filename}"` : ''}`;
      pieces.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${part.filename ? 'Content-Type: application/octet-stream\r\n' : ''}\r\n`));
      pieces.push(Buffer.isBuffer(part.value) ? part.value : Buffer.from(part.value));
      pieces.push(Buffer.from('\r\n'));
    }
    pieces.push(Buffer.from(`--${boundary}--\r\n`));
    return { boundary, bytes: Buffer.concat(pieces) };
  }

  async function send(parts: Parameters<typeof body>[0]) {
    const { boundary, bytes } = body(parts);
    const res = await fetch(`${server.url}/graphql`, {
      method: 'POST',
      headers: { ...alice.authHeaders(), 'apollo-require-preflight': 'true', 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: bytes,
      signal: AbortSignal.timeout(20_000),
    });
    return { status: res.status, json: (await res.json()) as { errors?: { extensions?: { code?: string } }[] } };
  }

  const chunk = randomFile(500);
  const cases: [string, Parameters<typeof body>[0]][] = [
    ['no map field', [{ name: 'operations', value: '' }, { name: '0', value: chunk, filename: 'c.bin' }]],
    ['map pointing at a file that is not sent', [{ name: 'operations', value: '' }, { name: 'map', value: '{"0":["variables.c"]}' }]],
    ['operations that are not JSON', [{ name: 'operations', value: '{ nope' }, { name: 'map', value: '{"0":["variables.c"]}' }, { name: '0', value: chunk, filename: 'c.bin' }]],
    ['map that is not JSON', [{ name: 'operations', value: '' }, { name: 'map', value: '[[' }, { name: '0', value: chunk, filename: 'c.bin' }]],
    ['map to a path that does not exist', [{ name: 'operations', value: '' }, { name: 'map', value: '{"0":["variables.nothere.deep"]}' }, { name: '0', value: chunk, filename: 'c.bin' }]],
    ['a second file', [{ name: 'operations', value: '' }, { name: 'map', value: '{"0":["variables.c"],"1":["variables.d"]}' }, { name: '0', value: chunk, filename: 'c.bin' }, { name: '1', value: chunk, filename: 'd.bin' }]],
    ['the same file field twice', [{ name: 'operations', value: '' }, { name: 'map', value: '{"0":["variables.c"]}' }, { name: '0', value: chunk, filename: 'c.bin' }, { name: '0', value: chunk, filename: 'c.bin' }]],
    ['files before operations', [{ name: '0', value: chunk, filename: 'c.bin' }, { name: 'operations', value: '' }, { name: 'map', value: '{"0":["variables.c"]}' }]],
  ];

  for (const [name, parts] of cases) {
    it(`refuses ${name} with BAD_USER_INPUT or PAYLOAD_TOO_LARGE, stays up, stores nothing`, async () => {
      const filled = parts.map((p) => (p.name === 'operations' && p.value === '' ? { ...p, value: operations(upload.id) } : p));
      const { json } = await send(filled);
      const codes = (json.errors ?? []).map((e) => e.extensions?.code);
      assert.ok(codes.length > 0, `an error for ${name}: ${JSON.stringify(json)}`);
      for (const code of codes) assert.ok(code === 'BAD_USER_INPUT' || code === 'PAYLOAD_TOO_LARGE', `${name}: ${JSON.stringify(json)}`);
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
      assert.equal((await alice.getUpload(upload.id)).offset, 1000, 'the offset did not move');
      const onDisk = await readFile(path.join(server.dataDir, 'uploads', `${upload.id}.part`));
      assert.equal(md5(onDisk.subarray(0, 1000)), md5(stored), 'the stored bytes did not change');
    });
  }

  it('still takes the next well-formed chunk', async () => {
    const rest = randomFile(2000);
    const result = await alice.uploadChunk(upload.id, 1000, rest);
    assert.equal(result.errors, undefined, JSON.stringify(result.errors));
    const done = await alice.complete(upload.id, md5(Buffer.concat([stored, rest])));
    assert.equal(done.errors, undefined, JSON.stringify(done.errors));
  });
});
