import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { printAppSchema } from '../src/graphql/schema';

const root = path.resolve(__dirname, '../..');

describe('schema.graphql', () => {
  it('is what the code generates (run `npm run schema` after changing the API)', async () => {
    const committed = await readFile(path.join(root, 'schema.graphql'), 'utf8');
    assert.equal(committed, await printAppSchema(), 'schema.graphql is stale: run `npm run schema` and commit it');
  });

  it('keeps every name API.md fixes', async () => {
    const sdl = await printAppSchema();
    const required = [
      'scalar Upload', 'scalar DateTime', 'scalar SafeInt',
      'enum UploadStatus', 'UPLOADING', 'COMPLETE', 'ABORTED', 'EXPIRED',
      'login(password: String!, username: String!): AuthPayload!',
      'startUpload(input: StartUploadInput!): ChunkedUpload!',
      'uploadChunk(chunk: Upload!, chunkMd5: String, offset: SafeInt!, uploadId: ID!): ChunkedUpload!',
      'completeUpload(description: String, md5: String!, uploadId: ID!): File!',
      'abortUpload(uploadId: ID!): ChunkedUpload!',
      'createUser(isAdmin: Boolean = false, password: String!, username: String!): User!',
      'changePassword(newPassword: String!, oldPassword: String!): Boolean!',
      'upload(id: ID!): ChunkedUpload',
      // API.md's myUploads(status: UploadStatus), with two optional additions (pages).
      'myUploads(after: ID, first: Int! = 100, status: UploadStatus): [ChunkedUpload!]!',
      'file(id: ID!): File',
      'me: User',
      'totalSize: SafeInt!', 'offset: SafeInt!', 'size: SafeInt!', 'downloadUrl: String!',
    ];
    for (const text of required) assert.ok(sdl.includes(text), `schema lacks: ${text}`);
  });
});
