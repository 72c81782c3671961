import { BigIntType, Entity, Enum, Index, ManyToOne, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';
import { randomUUID } from 'node:crypto';
import { User } from '../entities/user.entity';
import type { StoreState } from '../storage/file-store';

export enum UploadStatus {
  UPLOADING = 'UPLOADING',
  COMPLETE = 'COMPLETE',
  ABORTED = 'ABORTED',
  EXPIRED = 'EXPIRED',
}

/**
 * An upload in progress (and, for a while, its outcome). Its lease columns (lease_token,
 * lease_expires_at, lease_generation, lease_release_requested) are deliberately not mapped here: the lease repository
 * is the only code that reads or writes them.
 */
@Entity({ tableName: 'chunked_uploads' })
@Index({ properties: ['owner', 'createdAt'] })
@Index({ properties: ['status', 'expiresAt'] })
export class ChunkedUpload {
  [OptionalProps]?: 'id' | 'description' | 'offset' | 'status' | 'createdAt' | 'updatedAt' | 'lengthDeferred' | 'direct';

  /** Also the id of the File it becomes, so a retried completion finds bytes it already moved. */
  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => User, { deleteRule: 'cascade' })
  owner!: User;

  @Property({ type: 'text' })
  filename!: string;

  @Property({ type: 'text' })
  description: string = '';

  @Property({ type: 'text', nullable: true })
  mimeType?: string | null;

  @Property({ type: new BigIntType('number') })
  totalSize!: number;

  /**
   * The client will declare the size later (tus creation-defer-length): until it does,
   * `totalSize` is only the most the upload may hold, and it cannot complete.
   */
  @Property({ type: 'boolean' })
  lengthDeferred: boolean = false;

  /** Every part but the last is exactly this size (null: a plain sequential upload). */
  @Property({ type: new BigIntType('number'), nullable: true })
  partSize?: number | null;

  /** The client PUTs the parts straight to the object store (presigned URLs); the server never sees the bytes. */
  @Property({ type: 'boolean' })
  direct: boolean = false;

  /** The whole file's md5 as the client declared it at the start; the last byte completes against it. */
  @Property({ type: 'text', nullable: true })
  expectedMd5?: string | null;

  /** tus Upload-Metadata as the client sent it, echoed back by HEAD. */
  @Property({ type: 'text', nullable: true })
  clientMetadata?: string | null;

  /** Bytes durably stored; only ever moved by a committed chunk. */
  @Property({ type: new BigIntType('number'), fieldName: 'offset' })
  offset: number = 0;

  /** The md5 hasher's state after `offset` bytes, so completion never re-reads the file. */
  @Property({ type: 'blob', fieldName: 'md5_state', lazy: true })
  md5State!: Buffer;

  /** The storage backend's own bookkeeping (S3: multipart id, parts, staged tail), committed with `offset`. */
  @Property({ type: 'json', nullable: true })
  storageState?: StoreState;

  @Enum({ items: () => UploadStatus, type: 'text' })
  status: UploadStatus = UploadStatus.UPLOADING;

  @Property({ type: 'datetime' })
  createdAt: Date = new Date();

  @Property({ type: 'datetime' })
  updatedAt: Date = new Date();

  @Property({ type: 'datetime' })
  expiresAt!: Date;
}
