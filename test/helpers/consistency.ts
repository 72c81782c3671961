import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { md5 } from './client';
import { partFileOf, type ServerInstance } from './process';

/**
 * Rows and bytes agree: no File row without its bytes, no bytes (library or partial) that no
 * row vouches for. For server processes on the disk store (ServerInstance).
 */

export interface Rows {
  files: Map<string, { size: number; md5: string }>;
  uploads: Map<string, { status: string; offset: number; totalSize: number }>;
}

/** The File and upload rows: straight from PostgreSQL, or (embedded) through the API as the admin, who owns every upload here. */
export async function readRows(instance: ServerInstance): Promise<Rows> {
  if (instance.databaseUrl) {
    const client = new pg.Client({ connectionString: instance.databaseUrl });
    await client.connect();
    try {
      const files = await client.query('select id, size, md5 from files');
      const uploads = await client.query('select id, status, "offset", total_size from chunked_uploads');
      return {
        files: new Map(files.rows.map((r) => [r.id, { size: Number(r.size), md5: r.md5 }])),
        uploads: new Map(uploads.rows.map((r) => [r.id, { status: r.status, offset: Number(r.offset), totalSize: Number(r.total_size) }])),
      };
    } finally {
      await client.end();
    }
  }
  const data = await instance.admin.data(`{
    files(first: 100) { totalCount edges { node { id size md5 } } }
    myUploads { id status offset totalSize }
  }`);
  assert.ok(data.files.totalCount <= 100, 'more files than one page: the check would miss some');
  return {
    files: new Map(data.files.edges.map((e: any) => [e.node.id, { size: e.node.size, md5: e.node.md5 }])),
    uploads: new Map(data.myUploads.map((u: any) => [u.id, { status: u.status, offset: u.offset, totalSize: u.totalSize }])),
  };
}

/** The names in `dir` and their sizes (empty when `dir` does not exist). */
export async function listSizes(dir: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return sizes;
    throw err;
  }
  for (const name of names) sizes.set(name, (await stat(path.join(dir, name))).size);
  return sizes;
}

/**
 * No File row without its bytes (of its size and md5), no library bytes without a File row,
 * no partial bytes without an upload in progress, every upload in progress has at least its
 * offset on disk. `allowPending`: right after a crash during completeUpload, library bytes may
 * wait for an UPLOADING upload whose completion moved them but did not commit (the retry
 * finishes it; cleanup keeps them). Returns those ids.
 */
export async function assertRowsMatchBytes(instance: ServerInstance, allowPending: boolean): Promise<string[]> {
  const rows = await readRows(instance);
  const stored = await listSizes(path.join(instance.dataDir, 'files'));
  const parts = await listSizes(path.join(instance.dataDir, 'uploads'));
  const pending: string[] = [];
  for (const [id, file] of rows.files) {
    assert.ok(stored.has(id), `File row ${id} has no bytes in DATA_DIR/files`);
    assert.equal(stored.get(id), file.size, `File ${id}: stored size`);
    assert.equal(md5(await readFile(path.join(instance.dataDir, 'files', id))), file.md5, `File ${id}: stored md5`);
  }
  for (const [id, size] of stored) {
    if (rows.files.has(id)) continue;
    const upload = rows.uploads.get(id);
    const isPending = upload?.status === 'UPLOADING' && upload.offset === upload.totalSize && size === upload.totalSize;
    assert.ok(allowPending && isPending, `DATA_DIR/files/${id} (${size} bytes) has no File row (upload: ${JSON.stringify(upload)})`);
    pending.push(id);
  }
  for (const [name, size] of parts) {
    const id = partFileOf(name)?.uploadId ?? name;
    const upload = rows.uploads.get(id);
    assert.equal(upload?.status, 'UPLOADING', `DATA_DIR/uploads/${name} belongs to no upload in progress (${JSON.stringify(upload)})`);
    assert.ok(size >= upload!.offset, `DATA_DIR/uploads/${name}: ${size} bytes on disk, offset ${upload!.offset}`);
  }
  for (const [id, upload] of rows.uploads) {
    if (upload.status === 'COMPLETE') assert.ok(rows.files.has(id), `upload ${id} is COMPLETE but has no File row`);
    if (upload.status === 'UPLOADING' && !pending.includes(id)) {
      const hasPart = [...parts.keys()].some((name) => partFileOf(name)?.uploadId === id);
      assert.ok(hasPart, `upload ${id} is in progress (offset ${upload.offset}) but its part file is gone`);
    }
  }
  return pending;
}

/** The first `length` bytes of the upload's part file are exactly the source's; returns the part file's size. */
export async function assertPartPrefix(instance: ServerInstance, uploadId: string, bytes: Buffer, length: number): Promise<number> {
  const part = await readFile(await instance.currentPartPath(uploadId));
  assert.ok(part.length >= length, `the part file holds ${part.length} bytes, fewer than the stored offset ${length}`);
  assert.equal(md5(part.subarray(0, length)), md5(bytes.subarray(0, length)), `the ${length} stored bytes are the source's`);
  return part.length;
}
