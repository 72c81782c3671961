import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectHealthy, outcome } from './helpers/assert';
import { md5, randomFile, type GraphQLClient } from './helpers/client';
import { encodeMultipart, uploadChunkOperations, type MultipartPart } from './helpers/multipart';
import { startServer, type TestServer } from './helpers/server';
import { completeAndVerify, sendChunks } from './helpers/upload';

/** Multipart requests that break the GraphQL multipart request spec, sent as raw bodies. */
describe('malformed multipart requests', () => {
  let server: TestServer;
  let alice: GraphQLClient;
  /** Shared and read-only: an upload with its first 1000 bytes stored, which no malformed request may move. */
  let upload: { id: string };
  const stored = randomFile(1000);

  before(async () => {
    server = await startServer({ BODY_TIMEOUT: '5' });
    alice = await server.admin.newUser();
    upload = await alice.start('target.bin', 3000);
    await sendChunks(alice, upload.id, stored, 0, stored.length, stored.length);
  });
  after(() => server?.close());

  const chunk = randomFile(500);
  // `operations` left empty is filled in with a well-formed uploadChunk at offset 1000.
  const cases: [string, string, MultipartPart[]][] = [
    ['no map field', 'BAD_USER_INPUT', [{ name: 'operations', value: '' }, { name: '0', value: chunk, filename: 'c.bin' }]],
    ['map pointing at a file that is not sent', 'BAD_USER_INPUT', [{ name: 'operations', value: '' }, { name: 'map', value: '{"0":["variables.chunk"]}' }]],
    ['operations that are not JSON', 'BAD_USER_INPUT', [{ name: 'operations', value: '{ nope' }, { name: 'map', value: '{"0":["variables.chunk"]}' }, { name: '0', value: chunk, filename: 'c.bin' }]],
    ['map that is not JSON', 'BAD_USER_INPUT', [{ name: 'operations', value: '' }, { name: 'map', value: '[[' }, { name: '0', value: chunk, filename: 'c.bin' }]],
    ['map to a path that does not exist', 'BAD_USER_INPUT', [{ name: 'operations', value: '' }, { name: 'map', value: '{"0":["variables.nothere.deep"]}' }, { name: '0', value: chunk, filename: 'c.bin' }]],
    ['a second file', 'PAYLOAD_TOO_LARGE', [{ name: 'operations', value: '' }, { name: 'map', value: '{"0":["variables.chunk"],"1":["variables.other"]}' }, { name: '0', value: chunk, filename: 'c.bin' }, { name: '1', value: chunk, filename: 'd.bin' }]],
    ['the same file field twice', 'BAD_USER_INPUT', [{ name: 'operations', value: '' }, { name: 'map', value: '{"0":["variables.chunk"]}' }, { name: '0', value: chunk, filename: 'c.bin' }, { name: '0', value: chunk, filename: 'c.bin' }]],
    ['files before operations', 'BAD_USER_INPUT', [{ name: '0', value: chunk, filename: 'c.bin' }, { name: 'operations', value: '' }, { name: 'map', value: '{"0":["variables.chunk"]}' }]],
  ];

  for (const [name, code, parts] of cases) {
    it(`refuses ${name} with ${code}, stays up, stores nothing`, async () => {
      const filled = parts.map((p) => (p.name === 'operations' && p.value === '' ? { ...p, value: uploadChunkOperations(upload.id, 1000) } : p));
      const result = await alice.postMultipart(encodeMultipart(filled), { signal: AbortSignal.timeout(20_000) });
      assert.equal(outcome(result), code, `${name}: ${JSON.stringify(result)}`);
      await expectHealthy(server.url);
      assert.equal((await alice.getUpload(upload.id)).offset, 1000, 'the offset did not move');
      const onDisk = await readFile(path.join(server.dataDir, 'uploads', `${upload.id}.part`));
      assert.equal(md5(onDisk.subarray(0, 1000)), md5(stored), 'the stored bytes did not change');
    });
  }

  it('still takes well-formed chunks after a malformed one', async () => {
    const bytes = randomFile(3000);
    const fresh = await alice.start('after-malformed.bin', bytes.length);
    await sendChunks(alice, fresh.id, bytes, 0, 1000, 1000);
    const refused = await alice.postMultipart(encodeMultipart([{ name: 'operations', value: uploadChunkOperations(fresh.id, 1000) }, { name: '0', value: chunk, filename: 'c.bin' }]));
    assert.equal(outcome(refused), 'BAD_USER_INPUT');
    await sendChunks(alice, fresh.id, bytes, 1000, bytes.length, 2000);
    await completeAndVerify(alice, fresh.id, bytes);
  });
});
