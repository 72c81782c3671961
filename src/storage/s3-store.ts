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
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { S3StorageConfig } from '../config';
import {
  FileMissingError,
  StorageUnavailableError,
  type ByteRange,
  type ChunkWritten,
  type DirectUploads,
  type FileStore,
  type PresignedPart,
  type StoredPart,
  type StoredUpload,
  type StoreState,
  type WriterLease,
} from './file-store';
import { probeDirectory } from './disk-store';
import { isS3Code, S3Calls } from './s3-calls';

const MiB = 1024 * 1024;
/** S3: every part but the last is at least 5 MiB, and an upload has at most 10,000 parts. */
const S3_MIN_PART_SIZE = 5 * MiB;
const S3_MAX_PARTS = 10_000;
/** Part sizes are chosen so a file fits in this many parts; the rest are spent on fences. */
const PLANNED_PARTS = 9_000;
/** More staged tail objects than this are merged into one, so a part is never made of many small reads. */
const MAX_TAIL_SEGMENTS = 8;
/** Readiness asks once and does not wait long: a probe that hangs is an answer too. */
const PROBE_TIMEOUT_MS = 2_000;

export interface S3StoreOptions extends Omit<S3StorageConfig, 'kind'> {
  /** A local directory for the part this process is receiving right now. */
  stagingDir: string;
  /** The largest chunk a writer may send: bounds how many part numbers one writer can use. */
  maxChunkSize: number;
}

interface Part {
  n: number;
  etag: string;
  size: number;
}

interface TailSegment {
  key: string;
  size: number;
}

/** An upload in progress: an S3 multipart upload at the file's final key. */
interface S3UploadState {
  multipartId: string;
  partSize: number;
  /** Committed parts, ascending; their sizes plus the tail's add up to the upload's offset. */
  parts: Part[];
  /** Where the next writer's part numbers start; a fence moves it past an older writer's. */
  nextPart: number;
  /** Bytes after the last full part, as staging objects in order (together less than a part). */
  tail: TailSegment[];
}

/**
 * S3-compatible object storage. An upload is a multipart upload created at the file's final
 * key, so completing it publishes the file. Chunks need not match S3's part rules: a chunk's
 * bytes are cut into parts while they arrive (each part staged in a local file while it fills,
 * and uploaded while the next one fills), and what is left over is kept as a small staging
 * object that the next chunk (on any server instance) turns into the start of a part.
 *
 * Fencing: part numbers and tail keys are never reused by a newer lease holder. A takeover
 * moves `nextPart` past every number an older writer could still upload, so a frozen writer
 * that wakes up writes parts that no committed state lists, and CompleteMultipartUpload
 * names only committed parts.
 */
export class S3Store implements FileStore, DirectUploads {
  readonly direct: DirectUploads = this;

  private constructor(
    private readonly calls: S3Calls,
    private readonly options: S3StoreOptions,
    /** Signs the URLs clients use: the same client, unless clients reach the store under another name. */
    private readonly signer: S3Client,
    readonly clientOrigin: string,
  ) {}

  static async open(options: S3StoreOptions): Promise<S3Store> {
    const client = (endpoint: string | undefined) => new S3Client({
      endpoint,
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      credentials: options.credentials,
      // The SDK's default aws-chunked streaming bodies are refused by several S3-compatible servers.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // S3Calls retries with its own backoff, re-making streamed bodies; the SDK must not stack its retries on top.
      maxAttempts: 1,
      // A store that stops answering fails the request (and is retried) instead of holding it forever.
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
    });
    const s3 = client(options.endpoint);
    const signer = options.publicEndpoint ? client(options.publicEndpoint) : s3;
    // Signing is local: one URL for a key that need not exist tells where clients will connect.
    const probe = await getSignedUrl(signer, new GetObjectCommand({ Bucket: options.bucket, Key: `${options.prefix}files/` }), { expiresIn: 60 });
    const store = new S3Store(new S3Calls(s3), options, signer, new URL(probe).origin);
    await mkdir(options.stagingDir, { recursive: true });
    await store.ensureBucket();
    return store;
  }

  preferredChunkSize(totalSize: number): number {
    return Math.max(1, Math.min(this.partSizeFor(totalSize), totalSize));
  }

  async createUpload(uploadId: string, totalSize: number): Promise<StoreState> {
    const { UploadId } = await this.calls.run('create a multipart upload', (s3) =>
      s3.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.fileKey(uploadId) })),
    );
    return toStoreState({ multipartId: UploadId!, partSize: this.partSizeFor(totalSize), parts: [], nextPart: 1, tail: [] });
  }

  async createDirectUpload(uploadId: string, partSize: number): Promise<StoreState> {
    const { UploadId } = await this.calls.run('create a multipart upload', (s3) =>
      s3.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.fileKey(uploadId) })),
    );
    return toStoreState({ multipartId: UploadId!, partSize, parts: [], nextPart: 1, tail: [] });
  }

  /**
   * A presigned UploadPart. An md5 goes in as a signed Content-MD5 header: the client must send
   * that header, and the store refuses bytes that do not match it (Swift, MinIO and AWS all check
   * Content-MD5; Swift ignores x-amz-checksum-* headers, so those would protect nothing there).
   */
  async presignPart(upload: StoredUpload, partNumber: number, { expiresInSeconds, md5 }: { expiresInSeconds: number; md5?: string }): Promise<PresignedPart> {
    const contentMd5 = md5 ? Buffer.from(md5, 'hex').toString('base64') : undefined;
    const command = new UploadPartCommand({
      Bucket: this.bucket,
      Key: this.fileKey(upload.id),
      UploadId: asState(upload.state).multipartId,
      PartNumber: partNumber,
      ContentMD5: contentMd5,
    });
    const url = await getSignedUrl(this.signer, command, { expiresIn: expiresInSeconds });
    return { url, headers: contentMd5 ? [{ name: 'Content-MD5', value: contentMd5 }] : [] };
  }

  async listParts(upload: StoredUpload): Promise<StoredPart[]> {
    const parts: StoredPart[] = [];
    let marker: string | undefined;
    do {
      const page = await this.calls.run('list the parts of an upload', (s3) =>
        s3.send(new ListPartsCommand({ Bucket: this.bucket, Key: this.fileKey(upload.id), UploadId: asState(upload.state).multipartId, PartNumberMarker: marker })),
      );
      for (const p of page.Parts ?? []) parts.push({ partNumber: p.PartNumber!, size: p.Size ?? 0, etag: p.ETag ?? '' });
      marker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
    } while (marker);
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  async completeParts(upload: StoredUpload, parts: StoredPart[]): Promise<void> {
    const key = this.fileKey(upload.id);
    // The key is this upload's alone: an object of the right size there is an earlier completion's.
    if ((await this.objectSize(key)) === upload.totalSize) return;
    await this.calls.run('complete a multipart upload', (s3) =>
      s3.send(new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: asState(upload.state).multipartId,
        MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
      })),
    );
  }

  async fenceOlderWriters(upload: StoredUpload): Promise<StoreState> {
    const state = asState(upload.state);
    // A writer uploads at most this many parts: a chunk plus a tail shorter than one part, or the last part at publishing.
    const perWriter = Math.ceil(this.options.maxChunkSize / state.partSize) + 1;
    const nextPart = state.nextPart + perWriter;
    if (nextPart + perWriter > S3_MAX_PARTS + 1) {
      throw new Error(`Upload ${upload.id} has been taken over too often to fence again within S3's ${S3_MAX_PARTS} parts`);
    }
    return toStoreState({ ...state, nextPart });
  }

  async writeChunk(upload: StoredUpload, data: Readable, lease: WriterLease): Promise<ChunkWritten> {
    lease.assertHeld();
    const sink = new PartSink(this, upload, asState(upload.state), lease);
    await pipeline(data, sink);
    return { bytesWritten: sink.bytesWritten, state: toStoreState(sink.state) };
  }

  async stateCommitted(_uploadId: string, previous: StoreState, committed: StoreState): Promise<void> {
    const kept = new Set(asState(committed).tail.map((t) => t.key));
    for (const segment of asState(previous).tail) {
      if (!kept.has(segment.key)) await this.calls.run('delete a staged tail', (s3) => s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: segment.key })));
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
        await this.calls.run('store an empty file', (s3) => s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: '', ContentLength: 0 })));
        await this.abortMultipart(key, state.multipartId);
      } else {
        const parts = [...state.parts];
        const tailSize = sizeOf(state.tail);
        if (tailSize > 0) {
          // The tail becomes the last part, which S3 allows to be small.
          const n = state.nextPart;
          const etag = await this.uploadPart(upload.id, state.multipartId, n, tailSize, () => this.concat(state.tail));
          parts.push({ n, etag, size: tailSize });
        }
        await this.calls.run('complete a multipart upload', (s3) =>
          s3.send(new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: state.multipartId,
            MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.n, ETag: p.etag })) },
          })),
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
      const object = await this.calls.run('read a file', (s3) =>
        s3.send(new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.fileKey(fileId),
          Range: range ? `bytes=${range.start}-${range.end}` : undefined,
        })),
      );
      return object.Body as Readable;
    } catch (err) {
      if (isS3Code(err, 'NoSuchKey') || isS3Code(err, 'NotFound')) throw new FileMissingError(`file ${fileId}`);
      throw err;
    }
  }

  async deleteFile(fileId: string): Promise<void> {
    await this.calls.run('delete a file', (s3) => s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.fileKey(fileId) })));
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

  /** One part, its body made again for every attempt. Checks the lease before each one. */
  uploadPart(uploadId: string, multipartId: string, n: number, size: number, body: () => Promise<Readable>, lease?: WriterLease): Promise<string> {
    return this.calls.run(`upload part ${n}`, async (s3) => {
      lease?.assertHeld();
      const stream = await body();
      const command = new UploadPartCommand({
        Bucket: this.bucket,
        Key: this.fileKey(uploadId),
        UploadId: multipartId,
        PartNumber: n,
        Body: stream,
        ContentLength: size,
      });
      const { ETag } = await s3.send(command, { abortSignal: abortedWith(stream) });
      return ETag!;
    });
  }

  /** A new staging object (a fresh key, so a committed tail is never overwritten). */
  async putTail(uploadId: string, size: number, body: () => Promise<Readable>, lease: WriterLease): Promise<TailSegment> {
    const key = this.stagingKey(uploadId, randomUUID());
    await this.calls.run('stage a tail', async (s3) => {
      lease.assertHeld();
      const stream = await body();
      const command = new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: stream, ContentLength: size });
      return s3.send(command, { abortSignal: abortedWith(stream) });
    });
    return { key, size };
  }

  /** The staged segments' bytes, then `after`, as one stream. */
  async concat(segments: TailSegment[], after?: () => Readable): Promise<Readable> {
    const get = (key: string) => this.calls.run('read a staged tail', (s3) => s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })));
    return Readable.from(
      (async function* () {
        for (const segment of segments) yield* (await get(segment.key)).Body as Readable;
        if (after) yield* after();
      })(),
      { objectMode: false },
    );
  }

  /** Parts of at least the configured size, and large enough that the file fits with room left for fences. */
  private partSizeFor(totalSize: number): number {
    const needed = Math.ceil(totalSize / PLANNED_PARTS / MiB) * MiB;
    return Math.max(this.options.partSize, S3_MIN_PART_SIZE, needed);
  }

  private async objectSize(key: string): Promise<number | undefined> {
    try {
      return (await this.calls.run('look up a file', (s3) => s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })))).ContentLength;
    } catch (err) {
      if (isS3Code(err, 'NotFound') || isS3Code(err, 'NoSuchKey')) return undefined;
      throw err;
    }
  }

  private async abortMultipart(key: string, multipartId: string): Promise<void> {
    try {
      await this.calls.run('abort a multipart upload', (s3) => s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: multipartId })));
    } catch (err) {
      if (!isS3Code(err, 'NoSuchUpload')) throw err;
    }
  }

  /** One by one: DeleteObjects needs a Content-MD5 some S3-compatible servers insist on. There are few tails. */
  private async deleteStaging(uploadId: string): Promise<void> {
    const keys: string[] = [];
    for await (const key of this.objectKeys(this.stagingKey(uploadId, ''))) keys.push(key);
    for (const key of keys) await this.calls.run('delete a staged tail', (s3) => s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })));
  }

  private async *multipartUploads(prefix: string): AsyncIterable<{ key: string; id: string }> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page = await this.calls.run('list multipart uploads', (s3) =>
        s3.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker })),
      );
      for (const u of page.Uploads ?? []) yield { key: u.Key!, id: u.UploadId! };
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
  }

  private async *objectKeys(prefix: string): AsyncIterable<string> {
    let token: string | undefined;
    do {
      const page = await this.calls.run('list objects', (s3) => s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token })));
      for (const object of page.Contents ?? []) yield object.Key!;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** The bucket answers HeadBucket at once (one attempt, no retries), and the staging directory takes files. */
  async probe(): Promise<void> {
    await probeDirectory(this.options.stagingDir);
    try {
      await this.calls.run(
        'find the bucket',
        (s3) => s3.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: AbortSignal.timeout(PROBE_TIMEOUT_MS) }),
        { attempts: 1, firstDelayMs: 0 },
      );
    } catch (err) {
      // A bucket that is gone, or a probe cut off by its timeout, is as unusable as a store that is down.
      throw err instanceof StorageUnavailableError ? err : new StorageUnavailableError('unreachable', { cause: err });
    }
  }

  private async ensureBucket(): Promise<void> {
    try {
      await this.calls.run('find the bucket', (s3) => s3.send(new HeadBucketCommand({ Bucket: this.bucket })));
    } catch (err) {
      if (!isS3Code(err, 'NotFound') && !isS3Code(err, 'NoSuchBucket')) throw err;
      await this.calls.run('create the bucket', (s3) => s3.send(new CreateBucketCommand({ Bucket: this.bucket })));
    }
  }

  get stagingDir(): string {
    return this.options.stagingDir;
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

/**
 * Receives one chunk and turns it into parts as it arrives. The bytes of the part being
 * filled go to a local file; a full part is uploaded while the next one fills, and the sink
 * waits for that upload before it starts on a third, so at most two parts are staged at once.
 */
class PartSink extends Writable {
  bytesWritten = 0;
  /** The pending tail segments that start the part being filled. */
  private pending: TailSegment[];
  private readonly parts: Part[];
  private nextPart: number;
  private tail: TailSegment[] = [];
  private staging?: { file: string; fh: FileHandle; size: number };
  private uploading?: Promise<void>;

  constructor(
    private readonly store: S3Store,
    private readonly upload: StoredUpload,
    private readonly initial: S3UploadState,
    private readonly lease: WriterLease,
  ) {
    super({ highWaterMark: MiB });
    this.pending = [...initial.tail];
    this.parts = [...initial.parts];
    this.nextPart = initial.nextPart;
  }

  get state(): S3UploadState {
    return { ...this.initial, parts: this.parts, nextPart: this.nextPart, tail: this.tail };
  }

  override _write(buffer: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.take(buffer).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.finish().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const staged = this.staging;
    this.staging = undefined;
    // Let a part upload in flight settle (its number is fenced anyway), then drop local files.
    Promise.allSettled([this.uploading, staged && discard(staged)]).then(() => callback(error));
  }

  private async take(buffer: Buffer): Promise<void> {
    const { partSize } = this.initial;
    for (let at = 0; at < buffer.length; ) {
      const staging = this.staging ?? (this.staging = await this.openStaging());
      const room = partSize - sizeOf(this.pending) - staging.size;
      const piece = buffer.subarray(at, at + room);
      await staging.fh.write(piece);
      staging.size += piece.length;
      at += piece.length;
      this.bytesWritten += piece.length;
      if (sizeOf(this.pending) + staging.size === partSize) await this.sendPart();
    }
  }

  /** Uploads the full part in the background; waits first for the one before it. */
  private async sendPart(): Promise<void> {
    await this.uploading;
    const staging = this.staging!;
    const segments = this.pending;
    this.staging = undefined;
    this.pending = [];
    const n = this.nextPart++;
    const size = sizeOf(segments) + staging.size;
    this.uploading = (async () => {
      try {
        await staging.fh.close();
        const etag = await this.store.uploadPart(this.upload.id, this.initial.multipartId, n, size, () =>
          this.store.concat(segments, () => createReadStream(staging.file)), this.lease);
        this.parts.push({ n, etag, size });
      } finally {
        await rm(staging.file, { force: true });
      }
    })();
    // Reported by the next sendPart or by finish; never unhandled meanwhile.
    this.uploading.catch(() => {});
  }

  /** What is left after the last full part stays a staged tail: a new segment, or all merged into one. */
  private async finish(): Promise<void> {
    await this.uploading;
    const staging = this.staging;
    this.staging = undefined;
    if (!staging || staging.size === 0) {
      if (staging) await discard(staging);
      this.tail = this.pending;
      return;
    }
    try {
      await staging.fh.close();
      const fromFile = () => createReadStream(staging.file);
      if (this.pending.length + 1 > MAX_TAIL_SEGMENTS) {
        const merged = await this.store.putTail(this.upload.id, sizeOf(this.pending) + staging.size, () => this.store.concat(this.pending, fromFile), this.lease);
        this.tail = [merged];
      } else {
        const segment = await this.store.putTail(this.upload.id, staging.size, async () => fromFile(), this.lease);
        this.tail = [...this.pending, segment];
      }
    } finally {
      await rm(staging.file, { force: true });
    }
  }

  private async openStaging(): Promise<{ file: string; fh: FileHandle; size: number }> {
    const file = path.join(this.store.stagingDir, `${this.upload.id}-${randomUUID()}`);
    const staging = { file, fh: await open(file, 'w', 0o600), size: 0 };
    if (this.destroyed) {
      await discard(staging);
      throw new Error('The chunk stopped while its part was being staged.');
    }
    return staging;
  }
}

/** A request whose body fails must fail too: the SDK would otherwise wait for the missing bytes forever. */
function abortedWith(body: Readable): AbortSignal {
  const controller = new AbortController();
  body.once('error', (err) => controller.abort(err));
  return controller.signal;
}

async function discard(staging: { file: string; fh: FileHandle }): Promise<void> {
  await staging.fh.close().catch(() => {});
  await rm(staging.file, { force: true });
}

function sizeOf(segments: TailSegment[]): number {
  return segments.reduce((sum, s) => sum + s.size, 0);
}

/** Reads a committed state, including those written before parts were fenced and tails were segmented. */
function asState(state: StoreState): S3UploadState {
  const raw = state as (Partial<S3UploadState> & { tail?: TailSegment | TailSegment[] | null }) | null;
  if (!raw || typeof raw.multipartId !== 'string' || !raw.partSize) {
    throw new StorageUnavailableError('not writable', {
      cause: new Error('This upload has no S3 multipart state: was it started with another STORAGE?'),
    });
  }
  const parts = raw.parts ?? [];
  const tail = Array.isArray(raw.tail) ? raw.tail : raw.tail ? [raw.tail] : [];
  return { multipartId: raw.multipartId, partSize: raw.partSize, parts, nextPart: raw.nextPart ?? parts.length + 1, tail };
}

function toStoreState(state: S3UploadState): StoreState {
  return { ...state };
}
