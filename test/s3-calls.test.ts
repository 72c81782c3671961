import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { GetObjectCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { StorageUnavailableError } from '../src/storage/file-store';
import { isS3Code, S3Calls } from '../src/storage/s3-calls';
import { S3_SKIP, s3Endpoint } from './helpers/s3';

function client(endpoint: string, credentials = { accessKeyId: 'test:tester', secretAccessKey: 'testing' }): S3Client {
  return new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, maxAttempts: 1 });
}

/** A port nothing listens on: connections are refused. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('S3 calls: one retry policy, storage failures as STORAGE_UNAVAILABLE', () => {
  it('retries an unreachable store with backoff, then reports it unreachable', async () => {
    const calls = new S3Calls(client(`http://127.0.0.1:${await closedPort()}`), { attempts: 3, firstDelayMs: 10 });
    let attempts = 0;
    await assert.rejects(
      calls.run('list buckets', (s3) => {
        attempts++;
        return s3.send(new ListBucketsCommand({}));
      }),
      (err: StorageUnavailableError) => {
        assert.ok(err instanceof StorageUnavailableError);
        assert.equal(err.reason, 'unreachable');
        return true;
      },
    );
    assert.equal(attempts, 3);
  });

  it('passes an answer about the request itself through at once (a missing key)', { skip: S3_SKIP }, async () => {
    const calls = new S3Calls(client(s3Endpoint!), { attempts: 3, firstDelayMs: 10 });
    let attempts = 0;
    await assert.rejects(
      calls.run('read', (s3) => {
        attempts++;
        return s3.send(new GetObjectCommand({ Bucket: 'no-such-bucket-for-this-test', Key: 'nothing' }));
      }),
      (err) => isS3Code(err, 'NoSuchBucket') || isS3Code(err, 'NoSuchKey'),
    );
    assert.equal(attempts, 1);
  });

  it('reports a store that refuses our credentials as not writable, without retrying', { skip: S3_SKIP }, async () => {
    const calls = new S3Calls(client(s3Endpoint!, { accessKeyId: 'test:tester', secretAccessKey: 'wrong-secret' }), { attempts: 3, firstDelayMs: 10 });
    let attempts = 0;
    await assert.rejects(
      calls.run('list buckets', (s3) => {
        attempts++;
        return s3.send(new ListBucketsCommand({}));
      }),
      (err: StorageUnavailableError) => err instanceof StorageUnavailableError && err.reason === 'not writable',
    );
    assert.equal(attempts, 1);
  });
});
