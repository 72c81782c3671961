import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomFile } from './helpers/client';
import { databaseKind } from './helpers/database';
import { ProcessFixture } from './helpers/process';
import { ADMIN } from './helpers/server';
import { uploadFile } from './helpers/upload';

describe(`logs of a server process (${databaseKind})`, () => {
  const fixture = new ProcessFixture();

  it('are JSON lines when stdout is not a terminal, and tell of uploads, completions, aborts and deletions with ids and sizes, never a secret', async () => {
    const instance = await fixture.instance({});
    const admin = instance.admin;
    const bytes = randomFile(70_000);
    const file = await uploadFile(admin, bytes, 'logged.bin', { chunkSize: 30_000 });
    const dropped = await admin.start('dropped.bin', 100);
    assert.equal((await admin.abort(dropped.id)).errors, undefined);
    assert.equal((await admin.request(`mutation($id: ID!) { deleteFile(id: $id) }`, { id: file.id })).errors, undefined);

    const lines = instance.server.logs.map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        assert.fail(`not a JSON log line: ${line}`);
      }
    });
    const find = (msg: string, id: string) => lines.find((l) => l.msg === msg && (l.uploadId === id || l.fileId === id));
    assert.deepEqual(pick(find('upload started', file.id), ['filename', 'totalSize']), { filename: 'logged.bin', totalSize: bytes.length });
    assert.deepEqual(pick(find('upload completed', file.id), ['fileId', 'name', 'size', 'md5']), {
      fileId: file.id,
      name: 'logged.bin',
      size: bytes.length,
      md5: file.md5,
    });
    assert.deepEqual(pick(find('upload aborted', dropped.id), ['offset', 'totalSize']), { offset: 0, totalSize: 100 });
    assert.deepEqual(pick(find('file deleted', file.id), ['name', 'size']), { name: 'logged.bin', size: bytes.length });

    const all = instance.server.logs.join('\n');
    assert.equal(all.includes(admin.token!), false, 'no token in the logs');
    assert.equal(all.includes(ADMIN.password), false, 'no password in the logs');
  });
});

function pick(line: Record<string, unknown> | undefined, keys: string[]): Record<string, unknown> | undefined {
  return line && Object.fromEntries(keys.map((k) => [k, line[k]]));
}
