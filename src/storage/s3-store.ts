import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { randomUUID } from 'node:crypto';
import type { S3StorageConfig } from '../config';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  FileMissingError,
  type ByteRange,
  type ChunkWritten,
  type FileStore,
  type StoredUpload,
  type StoreState,
} from './file-store';

const MiB = 1024 * 1024;
/** S3: every part but the last is at least 5 MiB, and an upload has at most 10,000 parts. */
const S3_MIN_PART_SIZE = 5 * MiB;
const S3_MAX_PARTS = 10_000;
const PART_ATTEMPTS = 3;

export interface S3StoreOptions extends Omit<S3StorageConfig, 'kind'> {
  /** A local directory for the chunks this process is turning into parts right now. */
  stagingDir: string;
}

interface Part {
  n: number;
  etag: string;
  size: number;
}

/** An upload in progress: an S3 multipart upload at the file's final key. */
interface S3UploadState {
  multipartId: string;
  partSize: number;
  /** Committed parts, in order; their sizes plus the tail's add up to the upload's offset. */
  parts: Part[];
  /** Bytes after the last full part, kept as a staging object until more arrive. */
  tail: { key: string; size: number } | null;
}

/**
 * S3-compatible object storage. An upload is a multipart upload created at the file's final
 * key, so completing it publishes the file. Chunks need not match S3's part rules: each chunk
 * is staged in a local file (never in memory), cut into parts of `partSize`, and what is left
 * over is kept as a small staging object that the next chunk (on any server instance) picks up.
 */
export class S3Store implements FileStore {
  private constructor(
    private readonly s3: S3Client,
    private readonly options: S3StoreOptions,
  ) {}

  static async open(options: S3StoreOptions): Promise<S3Store> {
    const s3 = new S3Client({
      endpoint: options.endpoint,
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      credentials: options.credentials,
      // The SDK's default aws-chunked streaming bodies are refused by several S3-compatible servers.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const store = new S3Store(s3, options);
    await mkdir(options.stagingDir, { recursive: true });
    await store.ensureBucket();
    return store;
  }

  preferredChunkSize(totalSize: number): number {
    return Math.max(1, Math.min(this.partSizeFor(totalSize), totalSize));
  }

  async createUpload(uploadId: string, totalSize: number): Promise<StoreState> {
    const { UploadId } = await this.s3.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.fileKey(uploadId) }));
    const state: S3UploadState = { multipartId: UploadId!, partSize: this.partSizeFor(totalSize), parts: [], tail: null };
    return { ...state };
  }

  async writeChunk(upload: StoredUpload, data: Readable): Promise<ChunkWritten> {
    const state = asState(upload.state);
    const staged = path.join(this.options.stagingDir, `${upload.id}-${randomUUID()}`);
    try {
      if (state.tail) {
        const tail = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: state.tail.key }));
        await pipeline(tail.Body as Readable, createWriteStream(staged));
      }
      const sink = createWriteStream(staged, { flags: 'a' });
      await pipeline(data, sink);
      const bytesWritten = sink.bytesWritten;

      const stagedSize = (state.tail?.size ?? 0) + bytesWritten;
      const parts = [...state.parts];
      let position = 0;
      for (; stagedSize - position >= state.partSize; position += state.partSize) {
        const n = parts.length + 1;
        const etag = await this.uploadPart(upload.id, state.multipartId, n, () =>
          createReadStream(staged, { start: position, end: position + state.partSize - 1 }), state.partSize);
        parts.push({ n, etag, size: state.partSize });
      }
      let tail: S3UploadState['tail'] = null;
      const rest = stagedSize - position;
      if (rest > 0) {
        // A fresh key per write: the committed tail stays intact if this write is never committed.
        const key = this.stagingKey(upload.id, `${upload.offset + bytesWritten - rest}-${randomUUID()}`);
        await this.s3.send(
          new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: createReadStream(staged, { start: position }), ContentLength: rest }),
        );
        tail = { key, size: rest };
      }
      const next: S3UploadState = { ...state, parts, tail };
      return { bytesWritten, state: { ...next } };
    } finally {
      await rm(staged, { force: true });
    }
  }

  async publishUpload(upload: StoredUpload, fileId: string): Promise<void> {
    if (fileId !== upload.id) throw new Error('S3 uploads are created at their file key: the file id must be the upload id');
    const state = asState(upload.state);
    const key = this.fileKey(fileId);
    // The key is this upload's alone, so an object there means an earlier completion published
    // it and lost its database commit: nothing left to do but tidy up.
    if ((await this.objectSize(key)) !== upload.totalSize) {
      if (upload.totalSize === 0) {
        await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: '', ContentLength: 0 }));
        await this.abortMultipart(key, state.multipartId);
      } else {
        const parts = [...state.parts];
        if (state.tail) {
          // The tail becomes the last part, which S3 allows to be small.
          const n = parts.length + 1;
          const tailKey = state.tail.key;
          const etag = await this.uploadPart(upload.id, state.multipartId, n, async () => {
            const tail = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: tailKey }));
            return tail.Body as Readable;
          }, state.tail.size);
          parts.push({ n, etag, size: state.tail.size });
        }
        await this.s3.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: state.multipartId,
            MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.n, ETag: p.etag })) },
          }),
        );
      }
    }
    await this.deleteStaging(upload.id);
  }

  async deleteUpload(uploadId: string, state?: StoreState): Promise<void> {
    const key = this.fileKey(uploadId);
    const known = state ? asState(state).multipartId : undefined;
    if (known) {
      await this.abortMultipart(key, known);
    } else {
      for await (const upload of this.multipartUploads(key)) await this.abortMultipart(key, upload.id);
    }
    await this.deleteStaging(uploadId);
  }

  async readFile(fileId: string, range?: ByteRange): Promise<Readable> {
    try {
      const object = await this.s3.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.fileKey(fileId),
          Range: range ? `bytes=${range.start}-${range.end}` : undefined,
        }),
      );
      return object.Body as Readable;
    } catch (err) {
      if (isCode(err, 'NoSuchKey') || isCode(err, 'NotFound')) throw new FileMissingError(`file ${fileId}`);
      throw err;
    }
  }

  async deleteFile(fileId: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.fileKey(fileId) }));
  }

  async *listUploadIds(): AsyncIterable<string> {
    const seen = new Set<string>();
    for await (const upload of this.multipartUploads(this.key('files/'))) {
      const id = upload.key.slice(this.key('files/').length);
      if (!seen.has(id)) yield id;
      seen.add(id);
    }
    for await (const key of this.objectKeys(this.key('staging/'))) {
      const id = key.slice(this.key('staging/').length).split('/')[0];
      if (!seen.has(id)) yield id;
      seen.add(id);
    }
  }

  async *listFileIds(): AsyncIterable<string> {
    for await (const key of this.objectKeys(this.key('files/'))) yield key.slice(this.key('files/').length);
  }

  /** Parts of at least the configured size, and large enough that the file fits in 10,000 of them. */
  private partSizeFor(totalSize: number): number {
    const needed = Math.ceil(totalSize / S3_MAX_PARTS / MiB) * MiB;
    return Math.max(this.options.partSize, S3_MIN_PART_SIZE, needed);
  }

  /** One part from a body that can be made again, so a failed attempt can be retried. */
  private async uploadPart(
    uploadId: string,
    multipartId: string,
    n: number,
    body: () => Readable | Promise<Readable>,
    size: number,
  ): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        const { ETag } = await this.s3.send(
          new UploadPartCommand({
            Bucket: this.bucket,
            Key: this.fileKey(uploadId),
            UploadId: multipartId,
            PartNumber: n,
            Body: await body(),
            ContentLength: size,
          }),
        );
        return ETag!;
      } catch (err) {
        if (attempt >= PART_ATTEMPTS || isCode(err, 'NoSuchUpload')) throw err;
      }
    }
  }

  private async objectSize(key: string): Promise<number | undefined> {
    try {
      return (await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }))).ContentLength;
    } catch (err) {
      if (isCode(err, 'NotFound') || isCode(err, 'NoSuchKey')) return undefined;
      throw err;
    }
  }

  private async abortMultipart(key: string, multipartId: string): Promise<void> {
    try {
      await this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: multipartId }));
    } catch (err) {
      if (!isCode(err, 'NoSuchUpload')) throw err;
    }
  }

  /** One by one: DeleteObjects needs a Content-MD5 some S3-compatible servers insist on. There are few tails. */
  private async deleteStaging(uploadId: string): Promise<void> {
    const keys: string[] = [];
    for await (const key of this.objectKeys(this.stagingKey(uploadId, ''))) keys.push(key);
    for (const key of keys) await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  private async *multipartUploads(prefix: string): AsyncIterable<{ key: string; id: string }> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page = await this.s3.send(
        new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
      );
      for (const u of page.Uploads ?? []) yield { key: u.Key!, id: u.UploadId! };
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
  }

  private async *objectKeys(prefix: string): AsyncIterable<string> {
    let token: string | undefined;
    do {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const object of page.Contents ?? []) yield object.Key!;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  private async ensureBucket(): Promise<void> {
    try {
      await this.s3.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (!isCode(err, 'NotFound') && !isCode(err, 'NoSuchBucket')) throw err;
      await this.s3.send(new CreateBucketCommand({ Bucket: this.bucket }));
    }
  }

  private get bucket(): string {
    return this.options.bucket;
  }

  private key(relative: string): string {
    return this.options.prefix + relative;
  }

  private fileKey(id: string): string {
    return this.key(`files/${id}`);
  }

  private stagingKey(uploadId: string, name: string): string {
    return this.key(`staging/${uploadId}/${name}`);
  }
}

function asState(state: StoreState): S3UploadState {
  if (!state || typeof (state as Partial<S3UploadState>).multipartId !== 'string') {
    throw new Error('This upload has no S3 multipart state: was it started with another STORAGE?');
  }
  return state as unknown as S3UploadState;
}

function isCode(err: unknown, code: string): boolean {
  return err instanceof S3ServiceException ? err.name === code : (err as { name?: string })?.name === code;
}
