import { randomBytes } from 'node:crypto';

/**
 * The S3-compatible server for storage tests (CI starts OpenStack Swift's s3api with
 * .ci/start-s3.sh and sets TEST_S3_ENDPOINT). Unset: S3 tests are skipped.
 */
export const s3Endpoint = process.env.TEST_S3_ENDPOINT;

export const S3_SKIP = s3Endpoint ? false : 'TEST_S3_ENDPOINT is not set (see .ci/start-s3.sh for starting a local S3 server)';

/** Environment for a server on its own fresh bucket. */
export function s3Env(): Record<string, string> {
  return {
    STORAGE: 's3',
    S3_ENDPOINT: s3Endpoint ?? '',
    S3_REGION: 'us-east-1',
    S3_BUCKET: `test-${Date.now()}-${randomBytes(3).toString('hex')}`,
    S3_FORCE_PATH_STYLE: 'true',
    S3_ACCESS_KEY_ID: process.env.TEST_S3_ACCESS_KEY_ID ?? 'test:tester',
    S3_SECRET_ACCESS_KEY: process.env.TEST_S3_SECRET_ACCESS_KEY ?? 'testing',
    S3_PART_SIZE: String(5 * 1024 * 1024),
  };
}
