import path from 'node:path';
import type { Config } from '../config';
import { DiskStore } from './disk-store';
import type { FileStore } from './file-store';
import { S3Store } from './s3-store';

/** The backend STORAGE selects. */
export function openStore(config: Config): Promise<FileStore> {
  if (config.storage.kind === 's3') {
    return S3Store.open({ ...config.storage, stagingDir: path.join(config.dataDir, 's3-staging') });
  }
  return DiskStore.open(config.dataDir, { fsync: config.chunkFsync });
}
