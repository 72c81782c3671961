import path from 'node:path';
import type { Config } from '../config';
import { DiskStore } from './disk-store';
import type { FileStore } from './file-store';

/** The backend STORAGE selects. The S3 client is loaded only when used: it is a tenth of the heap. */
export async function openStore(config: Config): Promise<FileStore> {
  if (config.storage.kind === 's3') {
    const { S3Store } = await import('./s3-store.js');
    return S3Store.open({ ...config.storage, stagingDir: path.join(config.dataDir, 's3-staging'), maxChunkSize: config.maxChunkSize });
  }
  return DiskStore.open(config.dataDir, { fsync: config.chunkFsync });
}
