import { UploadError, abortReason, isAbortError, sleep, throwIfAborted } from './errors.js';
import {
  AbortUploadDocument,
  CompleteUploadDocument,
  CreateAccessTokenDocument,
  DeleteFileDocument,
  DeleteUserDocument,
  LogoutDocument,
  MyAccessTokensDocument,
  RevokeAccessTokenDocument,
  UpdateUserDocument,
  UsersDocument,
  FileByIdDocument,
  FilesDocument,
  LoginDocument,
  MeDocument,
  MissingPartsDocument,
  SignUploadPartsDocument,
  MyUploadsDocument,
  MyUsageDocument,
  ServerLimitsDocument,
  StartUploadDocument,
  UploadChunkDocument,
  UploadPartDocument,
  UploadStateDocument,
  type AccessTokenInfoFragment,
  type AccountInfoFragment,
  type FileInfoFragment,
  type TokenScope,
  type UsersQuery,
  type UsersQueryVariables,
  type FilesQuery,
  type FilesQueryVariables,
  type MyUploadsQuery,
  type ServerLimitsQuery,
  type TypedDocumentString,
  type UploadStateFragment,
  type UploadStatus,
  type UserInfoFragment,
} from './generated/graphql.js';
import { LiveUpdates, type CreateWsClient } from './live.js';
import { blobSource, isChunkSource, type ChunkSource } from './source.js';
import { MemoryResumeStore, type ResumeStore } from './store.js';
import { GraphQLTransport, type MultipartPoster, type TransportOptions } from './transport.js';

export type FileInfo = FileInfoFragment;
export type UploadState = UploadStateFragment;
export type UserInfo = UserInfoFragment;
export type FilesPage = FilesQuery['files'];
export type MyUpload = MyUploadsQuery['myUploads'][number];
export type AccountInfo = AccountInfoFragment;
export type UsersPage = UsersQuery['users'];
export type AccessTokenInfo = AccessTokenInfoFragment;
export type ServerLimits = ServerLimitsQuery['serverLimits'];
export type { TokenScope };

/** An md5 whose state can be saved and restored: hash-wasm's IHasher, or node:crypto's Hash and its copy(). */
export interface Md5Hasher {
  init(): unknown;
  update(data: Uint8Array): unknown;
  digest(outputType: 'hex'): string;
  save(): unknown;
  load(state: unknown): unknown;
}

/** What differs between the browser and Node builds. */
export interface Platform {
  createMD5(): Promise<Md5Hasher>;
  defaultStore(): ResumeStore;
  /** Node only: a file on disk as a ChunkSource. */
  openPath?(path: string): Promise<ChunkSource>;
  /** Node only: sends a chunk so that its bytes can be followed as they go (fetch cannot tell). */
  postMultipart?: MultipartPoster;
  /** graphql-ws's createClient, for subscriptions. */
  createWsClient: CreateWsClient;
}

export interface RetryOptions {
  /** Attempts after the first, per step, for transient failures. Default 8. */
  retries?: number;
  /** Default 500 ms, doubled each attempt (with jitter) up to maxDelayMs. */
  minDelayMs?: number;
  /** Default 20 s. */
  maxDelayMs?: number;
}

export interface ClientOptions extends TransportOptions {
  /** Where upload ids are remembered by file fingerprint: localStorage in a browser, memory in Node. */
  store?: ResumeStore;
  retry?: RetryOptions;
}

/** 'verifying': a direct upload is complete and the server is reading it once to check its md5. */
export type UploadPhase = 'starting' | 'hashing' | 'uploading' | 'completing' | 'verifying' | 'done';

export interface UploadProgress {
  uploadId: string;
  phase: UploadPhase;
  totalBytes: number;
  /** Bytes the server has durably stored (its offset). */
  bytesUploaded: number;
  /**
   * For a progress bar: the server's offset plus the bytes of the chunk in flight that have gone
   * out on the connection (in Node; a browser's fetch cannot tell, so there it moves per chunk).
   * Within one upload() call, never lower than an earlier report for the same uploadId: a chunk
   * sent again after a failure is not counted twice. A later call starts at the server's offset.
   * Reaches totalBytes when the upload is done.
   */
  bytesTransferred: number;
  /** Chunk bytes this call sent and the server accepted; less than totalBytes after a resume. */
  bytesSent: number;
  /** Bytes fed to the whole-file md5 so far. */
  bytesHashed: number;
  /** The server's offset when this call took the upload over (0 for a new upload). */
  resumedFrom: number;
}

export interface UploadOptions {
  /** Bytes per chunk request; default 8 MiB, never more than the server's maxChunkSize. */
  chunkSize?: number;
  description?: string;
  /** Defaults to the File's name, the path's base name, or "blob". */
  filename?: string;
  mimeType?: string;
  /** Aborting pauses the upload: nothing is deleted, and a later call resumes it. */
  signal?: AbortSignal;
  onProgress?: (progress: UploadProgress) => void;
  /** Called before each pause between attempts at a transient failure. */
  onRetry?: (error: UploadError, attempt: number, delayMs: number) => void;
  /** Resume this upload id (its size must match); otherwise the id remembered for the file is used. */
  uploadId?: string;
  /**
   * Overrides the file's fingerprint (the key its upload id is remembered under); null turns
   * resuming off for this call.
   */
  fingerprint?: string | null;
  /**
   * Sends each chunk's md5 so the server refuses a chunk damaged in transit (direct uploads:
   * each part's md5 is signed into its URL, so the store refuses it). Default true.
   */
  verifyChunks?: boolean;
  /**
   * Send the bytes straight to the object store when the server offers it (serverLimits.directUploads):
   * 'auto' (default) uses it then, false never does.
   */
  direct?: 'auto' | false;
  /**
   * Direct uploads: bytes per part (default 8 MiB, at least 5 MiB, raised for files that need more
   * than 10,000 parts). An upload in parts through the server uses `chunkSize` as its part size.
   */
  partSize?: number;
  /**
   * Parts on their way at once, for a direct upload and for an upload in parts through the server
   * (serverLimits.parallelParts). Default 4; 1 sends through the server one chunk after another
   * with uploadChunk, as servers without parallel parts take them.
   */
  parallelParts?: number;
  /**
   * Direct uploads: wait until the server has verified the file (READY) before resolving; a
   * REJECTED file rejects with code REJECTED. Default true; false resolves with the VERIFYING file.
   */
  waitForVerification?: boolean;
}

export interface UploadResult {
  file: FileInfo;
  uploadId: string;
  md5: string;
  resumedFrom: number;
  bytesSent: number;
}

export type UploadInput = Blob | ChunkSource | string;

export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
export const DEFAULT_PARALLEL_PARTS = 4;
const MIN_PART_SIZE = 5 * 1024 * 1024;
const MAX_PARTS = 10_000;
/** Parts signed per signUploadParts: one round trip for several parts. */
const SIGN_BATCH = 16;
/** How often to look at a VERIFYING file. */
const VERIFY_POLL_MS = 1000;
const HASH_SLICE = 1024 * 1024;
/** A part refused with RATE_LIMITED and a retryAfter up to this (seconds) is sent again after it. */
const BRIEF_RETRY_AFTER_S = 10;

/**
 * The part size of an upload in parts through the server: the chunk size, raised for a file that
 * would need more than 10,000 parts. Undefined when that is more than the server takes in one
 * request: such a file goes one chunk after another.
 */
function serverPartSizeFor(size: number, chunkSize: number, maxChunkSize: number): number | undefined {
  const partSize = Math.max(1, Math.min(Math.floor(chunkSize), maxChunkSize), Math.ceil(size / MAX_PARTS));
  return partSize <= maxChunkSize ? partSize : undefined;
}

function parallelPartsOf(options: UploadOptions): number {
  return Math.max(1, Math.floor(options.parallelParts ?? DEFAULT_PARALLEL_PARTS));
}

/** The part size for a direct upload: the one asked for, within S3's rules (5 MiB, 10,000 parts). */
function partSizeFor(size: number, wanted = DEFAULT_PART_SIZE): number {
  const MiB = 1024 * 1024;
  const needed = Math.ceil(size / MAX_PARTS / MiB) * MiB;
  return Math.max(MIN_PART_SIZE, Math.floor(wanted), needed);
}

/** Lets pending I/O callbacks run: setImmediate in Node, a timer in a browser. */
const yieldToIo = () =>
  new Promise<void>((resolve) => ((globalThis as { setImmediate?: (callback: () => void) => unknown }).setImmediate ?? setTimeout)(resolve));

/** One part read from the file, ready to send. */
interface PartToSend {
  n: number;
  bytes: Uint8Array;
  /** Its own md5, when parts are verified. */
  md5?: string;
}

/** How sendParts schedules the parts of one upload; `T` is what `prepare` gives each part (a direct upload's signed URL). */
interface PartPlan<T> {
  partSize: number;
  partCount: number;
  /** The parts to send; the others are only read for the md5. */
  missing: ReadonlySet<number>;
  parallel: number;
  /** The server's maxPartsAhead: it refuses a part further than this past the first part it lacks. */
  maxAhead?: number;
  /**
   * The first part the server lacks as its last answer put it: it appends stored parts to its
   * prefix in order, and may answer for a part before another request has appended it.
   */
  serverFirstMissing?: () => number;
  /** The whole-file md5, fed every part in order; without it only the missing parts are read. */
  hasher?: Md5Hasher;
  /** For each part's own md5 (verifyChunks). */
  partHasher?: Md5Hasher;
  /** Parts read before `prepare` takes them together. */
  group: number;
  prepare(parts: PartToSend[]): Promise<T[]>;
  /** Resolves once the part is stored, after its own retries; `written` follows its bytes on the connection where the platform can tell. */
  send(part: PartToSend, prepared: T, written: (bytes: number) => void): Promise<void>;
}

/** Bytes of the parts not missing. */
function storedBytes(size: number, partSize: number, partCount: number, missing: ReadonlySet<number>): number {
  let stored = 0;
  for (let n = 1; n <= partCount; n++) if (!missing.has(n)) stored += Math.min(partSize, size - (n - 1) * partSize);
  return stored;
}

interface ResumeSlot {
  store: ResumeStore;
  key: string;
}

/** Thrown inside a run when the upload must start over as a new one (at most once per call). */
class StartOver extends Error {}

/**
 * The upload SDK: start → chunks at the server's offset → complete, with resume, retries and an
 * incremental md5. Use the platform builds: `UploadClient` from `node.js` or `browser.js`.
 */
export class BaseUploadClient {
  readonly transport: GraphQLTransport;
  readonly store: ResumeStore;
  private readonly retry: Required<RetryOptions>;
  /** Resume keys for sources without a fingerprint (a plain Blob): only this instance knows them. */
  private readonly anonymous = new WeakMap<object, string>();
  private readonly anonymousStore = new MemoryResumeStore();
  /** Resume keys being uploaded right now: one file is not uploaded twice at once. */
  private readonly active = new Set<string>();
  /** What the server offers (direct uploads, parallel parts), asked once; again after a failure. */
  private limitsAsked?: Promise<ServerLimits | undefined>;
  /** Typed subscriptions (uploadProgress, libraryChanged) over one WebSocket, with this client's token. */
  readonly live: LiveUpdates;

  constructor(
    options: ClientOptions,
    private readonly platform: Platform,
  ) {
    this.transport = new GraphQLTransport(options, platform.postMultipart);
    this.store = options.store ?? platform.defaultStore();
    this.retry = { retries: 8, minDelayMs: 500, maxDelayMs: 20_000, ...options.retry };
    this.live = new LiveUpdates(this.transport, platform.createWsClient);
  }

  get token(): string | undefined {
    return this.transport.token;
  }

  set token(value: string | undefined) {
    this.transport.token = value;
  }

  /** Logs in; the client sends the token from then on. */
  async login(username: string, password: string): Promise<{ token: string; user: UserInfo }> {
    const { login } = await this.request(LoginDocument, { username, password });
    this.transport.token = login.token;
    return login;
  }

  /** Ends this client's token on the server (a login token or an access token) and forgets it. */
  async logout(): Promise<void> {
    try {
      await this.request(LogoutDocument, {});
    } finally {
      this.transport.token = undefined;
    }
  }

  /** Admins only: users oldest first, `search` a part of the username. */
  async users(variables: UsersQueryVariables = {}): Promise<UsersPage> {
    return (await this.request(UsersDocument, variables)).users;
  }

  /** Admins only: promote, demote, disable or enable. The last admin cannot be demoted or disabled. */
  async updateUser(id: string, change: { isAdmin?: boolean; disabled?: boolean }): Promise<AccountInfo> {
    return (await this.request(UpdateUserDocument, { id, ...change })).updateUser;
  }

  /** Admins only: their files stay without an author; their uploads in progress are aborted. */
  async deleteUser(id: string): Promise<boolean> {
    return (await this.request(DeleteUserDocument, { id })).deleteUser;
  }

  async myAccessTokens(): Promise<AccessTokenInfo[]> {
    return (await this.request(MyAccessTokensDocument, {})).myAccessTokens;
  }

  /** The token is in this answer only. `expiresInDays` undefined: it does not expire. */
  async createAccessToken(name: string, scopes: TokenScope[], expiresInDays?: number): Promise<{ token: string; accessToken: AccessTokenInfo }> {
    return (await this.request(CreateAccessTokenDocument, { name, scopes, expiresInDays })).createAccessToken;
  }

  async revokeAccessToken(id: string): Promise<boolean> {
    return (await this.request(RevokeAccessTokenDocument, { id })).revokeAccessToken;
  }

  /** Any typed operation (from generated/graphql.ts) with this client's token. */
  request<R, V>(document: TypedDocumentString<R, V>, variables: V, signal?: AbortSignal): Promise<R> {
    return this.transport.request(document, variables, signal);
  }

  async me(): Promise<UserInfo | null> {
    return (await this.request(MeDocument, {})).me ?? null;
  }

  /** What you store (files and uploads in progress) and your quota (null: no limit). */
  async usage(): Promise<{ quotaBytes: number | null; usedBytes: number } | null> {
    const me = (await this.request(MyUsageDocument, {})).me;
    return me ? { quotaBytes: me.quotaBytes ?? null, usedBytes: me.usedBytes } : null;
  }

  /** The library, newest first; `uploadedBefore` for the "older than N days" view. */
  async files(variables: Partial<FilesQueryVariables> = {}): Promise<FilesPage> {
    return (await this.request(FilesDocument, { first: 20, ...variables })).files;
  }

  async file(id: string): Promise<FileInfo | null> {
    return (await this.request(FileByIdDocument, { id })).file ?? null;
  }

  /** The author or an admin; anyone else gets FORBIDDEN. */
  async deleteFile(id: string): Promise<boolean> {
    return (await this.request(DeleteFileDocument, { id })).deleteFile;
  }

  /** What the server accepts, to refuse a file that is too large before uploading anything. */
  async serverLimits(): Promise<ServerLimits> {
    return (await this.request(ServerLimitsDocument, {})).serverLimits;
  }

  async myUploads(status?: UploadStatus): Promise<MyUpload[]> {
    return (await this.request(MyUploadsDocument, { status })).myUploads;
  }

  async uploadState(id: string, signal?: AbortSignal): Promise<UploadState | null> {
    return (await this.request(UploadStateDocument, { id }, signal)).upload ?? null;
  }

  /** Cancels an upload for good (its bytes are deleted) and forgets it. */
  async abortUpload(id: string): Promise<UploadState> {
    const { abortUpload } = await this.request(AbortUploadDocument, { uploadId: id });
    await this.forgetUpload(id);
    return abortUpload;
  }

  /** Drops remembered records that point at this upload id. */
  async forgetUpload(id: string): Promise<void> {
    for (const store of [this.store, this.anonymousStore]) {
      for (const [key, record] of await store.entries()) if (record.uploadId === id) await store.remove(key);
    }
  }

  /** A File's downloadUrl as a URL a browser or fetch can open. */
  downloadUrl(file: Pick<FileInfo, 'downloadUrl'>): string {
    return this.transport.resolve(file.downloadUrl);
  }

  /**
   * Uploads a File, Blob, ChunkSource or (Node) a path. Resumes the upload remembered for the
   * same file, retries transient failures with exponential backoff, and completes with the md5.
   * Rejects with the signal's reason when aborted; the upload can then be resumed by calling
   * again with the same file.
   */
  async upload(input: UploadInput, options: UploadOptions = {}): Promise<UploadResult> {
    throwIfAborted(options.signal);
    const source = await this.openSource(input, options.filename);
    try {
      const slot = this.resumeSlot(input, source, options);
      const lock = slot && `${slot.store === this.store ? 'durable' : 'memory'}|${slot.key}`;
      if (lock && this.active.has(lock)) throw new UploadError('CLIENT_ERROR', `${source.name} is already being uploaded by this client.`);
      if (lock) this.active.add(lock);
      try {
        const progress: UploadProgress = {
          uploadId: '',
          phase: 'starting',
          totalBytes: source.size,
          bytesUploaded: 0,
          bytesTransferred: 0,
          bytesSent: 0,
          bytesHashed: 0,
          resumedFrom: 0,
        };
        try {
          return await this.run(source, slot, options, progress, false);
        } catch (err) {
          if (!(err instanceof StartOver)) throw err;
          return await this.run(source, slot, options, progress, true);
        }
      } finally {
        if (lock) this.active.delete(lock);
      }
    } finally {
      // Only what the SDK opened itself (a path) is closed here.
      if (typeof input === 'string') await source.close?.();
    }
  }

  private async openSource(input: UploadInput, filename?: string): Promise<ChunkSource> {
    if (typeof input === 'string') {
      if (!this.platform.openPath) throw new UploadError('CLIENT_ERROR', 'Uploading a path needs the Node build of the SDK.');
      const source = await this.platform.openPath(input);
      return filename ? { ...source, name: filename, read: source.read.bind(source), close: source.close?.bind(source) } : source;
    }
    if (isChunkSource(input)) return filename ? { ...input, name: filename, read: input.read.bind(input) } : input;
    return blobSource(input, filename);
  }

  private resumeSlot(input: UploadInput, source: ChunkSource, options: UploadOptions): ResumeSlot | undefined {
    if (options.fingerprint === null) return undefined;
    const fingerprint = options.fingerprint ?? source.fingerprint;
    // localStorage and a JSON file are per origin or per user, but one store may serve several servers.
    if (fingerprint) return { store: this.store, key: `${this.transport.baseUrl}|${fingerprint}` };
    if (typeof input !== 'object') return undefined;
    let key = this.anonymous.get(input);
    if (!key) {
      key = `anonymous:${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
      this.anonymous.set(input, key);
    }
    return { store: this.anonymousStore, key };
  }

  private async run(source: ChunkSource, slot: ResumeSlot | undefined, options: UploadOptions, progress: UploadProgress, fresh: boolean): Promise<UploadResult> {
    const { signal } = options;
    const size = source.size;
    const report = progressReporter(progress, options);
    /** The bar moves to `position` unless it is already past it (a chunk being sent again). */
    const reach = (position: number) => Math.max(progress.bytesTransferred, position);

    let upload = fresh ? undefined : await this.findResumable(source, slot, options);
    if (!upload) {
      // An empty file has nothing to send in parts or to the bucket.
      const limits = size > 0 ? await this.limitsFor(options) : undefined;
      const direct = !!limits?.directUploads && options.direct !== false;
      const partSize = direct
        ? partSizeFor(size, options.partSize)
        : limits?.parallelParts && parallelPartsOf(options) > 1
          ? serverPartSizeFor(size, options.chunkSize ?? DEFAULT_CHUNK_SIZE, limits.maxChunkSize)
          : undefined;
      const input = {
        filename: source.name,
        totalSize: size,
        description: options.description,
        mimeType: options.mimeType ?? source.type,
        ...(direct ? { direct: true } : {}),
        ...(partSize ? { partSize } : {}),
      };
      upload = (await this.withRetry(() => this.request(StartUploadDocument, { input }, signal), options)).startUpload;
      await slot?.store.set(slot.key, { uploadId: upload.id, name: source.name, size, startedAt: Date.now() });
    }
    if (upload.direct) return this.runDirect(source, upload, slot, options, progress, fresh);
    // A remembered upload keeps the way it was started: one in parts takes only uploadPart.
    if (upload.partSize) return this.runParts(source, upload, slot, options, progress, fresh);
    const uploadId = upload.id;
    const resumedFrom = upload.offset;
    // A new upload after a StartOver is measured afresh: the bar is for this upload id.
    if (progress.uploadId !== uploadId) progress.bytesTransferred = 0;
    report({ uploadId, resumedFrom, bytesUploaded: upload.offset, bytesTransferred: reach(upload.offset), bytesHashed: 0, phase: 'uploading' });

    const chunkSize = Math.max(1, Math.min(Math.floor(options.chunkSize ?? DEFAULT_CHUNK_SIZE), upload.maxChunkSize));
    const hasher = await this.platform.createMD5();
    hasher.init();
    const chunkHasher = options.verifyChunks === false ? undefined : await this.platform.createMD5();
    /** Bytes [0, hashed) of the file are in `hasher`, in order. */
    let hashed = 0;
    /** The server holds bytes this call did not send (a resume, or another writer): the md5 may disagree. */
    let foreignBytes = resumedFrom > 0;

    // The md5 covers the whole file, but after a resume the server already holds [0, offset):
    // those bytes are read once more here to bring the md5 up to date. This is the only place a
    // byte is read twice; a run without a resume reads each byte once, for both the md5 and the chunk.
    const catchUp = async (target: number) => {
      while (hashed < target) {
        throwIfAborted(signal);
        const end = Math.min(hashed + chunkSize, target);
        hasher.update(await source.read(hashed, end));
        hashed = end;
        report({ phase: 'hashing', bytesHashed: hashed });
      }
    };

    /** A chunk read, in the md5, with its own md5: ready to send. */
    interface Prepared {
      start: number;
      bytes: Uint8Array;
      chunkMd5: string | null;
    }
    const prepare = async (start: number): Promise<Prepared> => {
      await catchUp(start);
      const end = Math.min(start + chunkSize, size);
      const bytes = await source.read(start, end);
      if (bytes.length !== end - start) {
        throw new UploadError('CLIENT_ERROR', `${source.name} changed while uploading: expected ${end - start} bytes at ${start}, read ${bytes.length}.`);
      }
      // A resent chunk (after a failure or an OFFSET_MISMATCH that moved back) is already in the md5.
      // Hashed a slice at a time, so a chunk on its way meanwhile keeps being written out.
      for (let from = Math.max(hashed, start); from < end; from = hashed) {
        hashed = Math.min(from + HASH_SLICE, end);
        hasher.update(bytes.subarray(from - start, hashed - start));
        if (hashed < end) await yieldToIo();
      }
      let chunkMd5: string | null = null;
      if (chunkHasher) {
        chunkHasher.init();
        chunkHasher.update(bytes);
        chunkMd5 = chunkHasher.digest('hex');
      }
      return { start, bytes, chunkMd5 };
    };

    let offset = upload.offset;
    let failures = 0;
    let mismatches = 0;
    let completions = 0;
    /**
     * The next chunk, read and hashed while the one before it is on its way (the md5s cost about as
     * much as sending). Always awaited before the hashers are touched again; its failure is
     * reported only if the chunk is used (it is read again then).
     */
    let ahead: Promise<Prepared> | undefined;
    const takeAhead = async (): Promise<Prepared | undefined> => {
      const pending = ahead;
      ahead = undefined;
      return pending?.catch(() => undefined);
    };
    for (;;) {
      while (offset < size) {
        throwIfAborted(signal);
        const ready = await takeAhead();
        const { bytes, chunkMd5 } = ready?.start === offset ? ready : await prepare(offset);
        const end = offset + bytes.length;
        if (end < size) {
          ahead = prepare(end);
          ahead.catch(() => {});
        }
        report({ phase: 'uploading', bytesHashed: hashed });
        try {
          const { uploadChunk } = await this.transport.requestWithFile(
            UploadChunkDocument,
            { uploadId, offset, chunk: null, chunkMd5 },
            'chunk',
            bytes,
            signal,
            (written) => {
              if (offset + written > progress.bytesTransferred) report({ bytesTransferred: offset + written });
            },
          );
          offset = uploadChunk.offset;
          failures = 0;
          mismatches = 0;
          report({ bytesSent: progress.bytesSent + bytes.length, bytesUploaded: offset, bytesTransferred: reach(offset) });
        } catch (err) {
          if (signal?.aborted) throw abortReason(signal);
          if (isAbortError(err) || !(err instanceof UploadError)) throw err;
          if (err.code === 'OFFSET_MISMATCH' && typeof err.extensions.expectedOffset === 'number') {
            // The server stored more (a lost response) or less (a lost chunk) than we thought.
            if (++mismatches > 10) throw err;
            if (err.extensions.expectedOffset > offset) foreignBytes = true;
            offset = err.extensions.expectedOffset;
            report({ bytesUploaded: offset, bytesTransferred: reach(offset) });
            continue;
          }
          if (err.transient || err.code === 'CHECKSUM_MISMATCH') {
            await this.pause(failures++, err, options);
            // The chunk may have been stored before the failure: ask the server where to go on.
            const state = await this.withRetry(() => this.uploadState(uploadId, signal), options);
            if (!state) throw await this.startOver(uploadId, slot, fresh, err);
            offset = state.offset;
            report({ bytesUploaded: offset, bytesTransferred: reach(offset) });
            continue;
          }
          if (err.code === 'UPLOAD_EXPIRED' || err.code === 'NOT_FOUND') throw await this.startOver(uploadId, slot, fresh, err);
          throw err;
        }
      }

      await takeAhead();
      await catchUp(size);
      const state = hasher.save();
      const md5 = hasher.digest('hex');
      report({ phase: 'completing', bytesHashed: size });
      try {
        const { completeUpload: file } = await this.withRetry(
          () => this.request(CompleteUploadDocument, { uploadId, md5, description: options.description }, signal),
          options,
        );
        await slot?.store.remove(slot.key);
        report({ phase: 'done', bytesUploaded: size, bytesTransferred: size });
        return { file, uploadId, md5, resumedFrom, bytesSent: progress.bytesSent };
      } catch (err) {
        if (!(err instanceof UploadError)) throw err;
        if (err.code === 'UPLOAD_INCOMPLETE' && typeof err.extensions.offset === 'number' && ++completions <= 3) {
          hasher.load(state);
          offset = err.extensions.offset;
          continue;
        }
        // Bytes we did not send differ from the file: that upload was another file's (or another
        // version's) with the same fingerprint. Start a new one rather than fail.
        if (err.code === 'CHECKSUM_MISMATCH' && foreignBytes) throw await this.startOver(uploadId, slot, fresh, err);
        if (err.code === 'UPLOAD_EXPIRED' || err.code === 'NOT_FOUND') throw await this.startOver(uploadId, slot, fresh, err);
        throw err;
      }
    }
  }

  /** Undefined when the limits cannot be read: the upload then goes one chunk after another. */
  private limitsFor(options: UploadOptions): Promise<ServerLimits | undefined> {
    this.limitsAsked ??= this.withRetry(() => this.serverLimits(), options).catch(() => {
      this.limitsAsked = undefined;
      return undefined;
    });
    return this.limitsAsked;
  }

  /**
   * A direct upload: the parts go straight to the object store over presigned URLs, several at
   * once, while one pass over the file feeds the whole-file md5 in order. Parts the store already
   * holds (a resume, after a reload too: the server lists them) are read for the md5 only. Each
   * URL carries its part's md5 as a signed Content-MD5, so the store refuses a damaged part; a
   * part whose PUT fails is sent again, signed again when its link has expired or is refused.
   */
  private async runDirect(
    source: ChunkSource,
    upload: UploadState,
    slot: ResumeSlot | undefined,
    options: UploadOptions,
    progress: UploadProgress,
    fresh: boolean,
  ): Promise<UploadResult> {
    const { signal } = options;
    const size = source.size;
    const uploadId = upload.id;
    const partSize = upload.partSize!;
    const partCount = upload.partCount!;
    const report = progressReporter(progress, options);
    const missing = await this.missingParts(upload, slot, fresh, options);
    const stored = storedBytes(size, partSize, partCount, missing);
    const resumedFrom = upload.status === 'UPLOADING' ? stored : size;
    if (progress.uploadId !== uploadId) progress.bytesTransferred = 0;
    report({ uploadId, resumedFrom, bytesUploaded: stored, bytesTransferred: Math.max(progress.bytesTransferred, stored), bytesHashed: 0, phase: 'uploading' });

    const hasher = await this.platform.createMD5();
    hasher.init();
    const verifyParts = options.verifyChunks !== false;
    const parallel = parallelPartsOf(options);

    type Signed = { url: string; headers: { name: string; value: string }[]; expiresAt: string };
    const sendPart = async (n: number, bytes: Uint8Array, md5: string | undefined, signed: Signed) => {
      for (let attempt = 0; ; attempt++) {
        throwIfAborted(signal);
        if (Date.parse(signed.expiresAt) - Date.now() < 5000) {
          [signed] = (await this.withRetry(() => this.request(SignUploadPartsDocument, { uploadId, partNumbers: [n], partMd5s: md5 ? [md5] : null }, signal), options)).signUploadParts;
        }
        const outcome = await this.transport.putPart(signed.url, signed.headers, bytes, signal);
        if (outcome.ok) return;
        // The store no longer knows the multipart upload: it was aborted or expired.
        if (outcome.status === 404) throw new UploadError('NOT_FOUND', `The object store no longer holds upload ${uploadId}.`, {}, 404);
        // 403: a link that expired (or a clock out of step): sign it again before the next try.
        if (outcome.status === 403) signed = { ...signed, expiresAt: new Date(0).toISOString() };
        await this.pause(attempt, outcome.error, options);
      }
    };

    try {
      await this.sendParts<Signed>(source, progress, report, signal, {
        partSize,
        partCount,
        missing,
        parallel,
        hasher,
        partHasher: verifyParts ? await this.platform.createMD5() : undefined,
        // One signUploadParts round trip for several parts.
        group: Math.min(SIGN_BATCH, parallel),
        prepare: async (parts) =>
          (
            await this.withRetry(
              () => this.request(SignUploadPartsDocument, { uploadId, partNumbers: parts.map((p) => p.n), partMd5s: verifyParts ? parts.map((p) => p.md5!) : null }, signal),
              options,
            )
          ).signUploadParts,
        send: (part, signed) => sendPart(part.n, part.bytes, part.md5, signed),
      });
    } catch (err) {
      if (err instanceof UploadError && (err.code === 'UPLOAD_EXPIRED' || err.code === 'NOT_FOUND')) throw await this.startOver(uploadId, slot, fresh, err);
      throw err;
    }

    const md5 = hasher.digest('hex');
    report({ phase: 'completing', bytesHashed: size, bytesUploaded: size, bytesTransferred: size });
    let file: FileInfo;
    try {
      file = (await this.withRetry(() => this.request(CompleteUploadDocument, { uploadId, md5, description: options.description }, signal), options)).completeUpload;
    } catch (err) {
      if (err instanceof UploadError && (err.code === 'UPLOAD_EXPIRED' || err.code === 'NOT_FOUND')) throw await this.startOver(uploadId, slot, fresh, err);
      // The upload was another file's with the same fingerprint: start a new one.
      if (err instanceof UploadError && err.code === 'CHECKSUM_MISMATCH' && resumedFrom > 0) throw await this.startOver(uploadId, slot, fresh, err);
      throw err;
    }
    await slot?.store.remove(slot.key);
    if (options.waitForVerification !== false) {
      report({ phase: 'verifying' });
      while (file.status === 'VERIFYING') {
        await sleep(VERIFY_POLL_MS, signal);
        file = (await this.withRetry(() => this.request(FileByIdDocument, { id: file.id }, signal), options)).file ?? file;
      }
      if (file.status === 'REJECTED') throw new UploadError('REJECTED', `${file.name} was rejected: ${file.statusReason ?? 'its md5 did not match'}.`, { file });
    }
    report({ phase: 'done' });
    return { file, uploadId, md5, resumedFrom, bytesSent: progress.bytesSent };
  }

  /**
   * An upload in parts through the server (serverLimits.parallelParts): the parts go with
   * uploadPart, several at once, scheduled as a direct upload's are, each with its chunkMd5; one
   * pass over the file feeds the whole-file md5 that completeUpload checks. A resume sends only
   * the parts the server lists as missing (the others are read for the md5 only).
   */
  private async runParts(
    source: ChunkSource,
    upload: UploadState,
    slot: ResumeSlot | undefined,
    options: UploadOptions,
    progress: UploadProgress,
    fresh: boolean,
  ): Promise<UploadResult> {
    const { signal } = options;
    const size = source.size;
    const uploadId = upload.id;
    const partSize = upload.partSize!;
    const partCount = upload.partCount!;
    const report = progressReporter(progress, options);
    const limits = await this.limitsFor(options);
    let serverFirstMissing = Math.floor(upload.offset / partSize) + 1;
    const answered = (state: UploadState) => {
      serverFirstMissing = Math.max(serverFirstMissing, Math.floor(state.offset / partSize) + 1);
    };
    let missing = await this.missingParts(upload, slot, fresh, options);
    const resumedFrom = upload.status === 'UPLOADING' ? storedBytes(size, partSize, partCount, missing) : size;
    if (progress.uploadId !== uploadId) progress.bytesTransferred = 0;
    report({ uploadId, resumedFrom, bytesUploaded: resumedFrom, bytesTransferred: Math.max(progress.bytesTransferred, resumedFrom), bytesHashed: 0, phase: 'uploading' });

    const hasher = await this.platform.createMD5();
    hasher.init();
    const partHasher = options.verifyChunks === false ? undefined : await this.platform.createMD5();
    /** Sends the `missing` parts; `hashing`: the first pass, which also feeds every part to the md5. */
    const send = async (hashing: boolean) => {
      try {
        await this.sendParts<undefined>(source, progress, report, signal, {
          partSize,
          partCount,
          missing,
          parallel: parallelPartsOf(options),
          maxAhead: limits?.maxPartsAhead,
          serverFirstMissing: () => serverFirstMissing,
          hasher: hashing ? hasher : undefined,
          partHasher,
          group: 1,
          prepare: async (parts) => parts.map(() => undefined),
          send: async (part, _, written) => answered(await this.sendServerPart(uploadId, part, options, written)),
        });
      } catch (err) {
        if (err instanceof UploadError && (err.code === 'UPLOAD_EXPIRED' || err.code === 'NOT_FOUND')) throw await this.startOver(uploadId, slot, fresh, err);
        throw err;
      }
    };
    await send(true);

    const md5 = hasher.digest('hex');
    for (let completions = 1; ; completions++) {
      report({ phase: 'completing', bytesHashed: size });
      try {
        const { completeUpload: file } = await this.withRetry(
          () => this.request(CompleteUploadDocument, { uploadId, md5, description: options.description }, signal),
          options,
        );
        await slot?.store.remove(slot.key);
        report({ phase: 'done', bytesUploaded: size, bytesTransferred: size });
        return { file, uploadId, md5, resumedFrom, bytesSent: progress.bytesSent };
      } catch (err) {
        if (!(err instanceof UploadError)) throw err;
        // The server lacks parts this call counted as stored (it lost them, or another writer
        // aborted a part): ask which, and send those again.
        if (err.code === 'UPLOAD_INCOMPLETE' && Array.isArray(err.extensions.missingParts) && completions <= 3) {
          missing = await this.missingParts(upload, slot, fresh, options);
          report({ bytesUploaded: storedBytes(size, partSize, partCount, missing) });
          await send(false);
          continue;
        }
        // Parts this call did not send differ from the file: that upload was another file's (or
        // another version's) with the same fingerprint. Start a new one rather than fail.
        if (err.code === 'CHECKSUM_MISMATCH' && resumedFrom > 0) throw await this.startOver(uploadId, slot, fresh, err);
        if (err.code === 'UPLOAD_EXPIRED' || err.code === 'NOT_FOUND') throw await this.startOver(uploadId, slot, fresh, err);
        throw err;
      }
    }
  }

  /**
   * One part with uploadPart, until the server has it. Sent again after a pause when the failure
   * is transient (UPLOAD_LOCKED: another request holds this part, or it is too far ahead of the
   * first part the server lacks; a lost answer: the part may be stored, and identical bytes are
   * accepted again), when its chunkMd5 did not match (damaged on the way), or when the user has
   * too many chunks streaming (RATE_LIMITED with a short retryAfter).
   */
  private async sendServerPart(uploadId: string, part: PartToSend, options: UploadOptions, written: (bytes: number) => void): Promise<UploadState> {
    const { signal } = options;
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(signal);
      try {
        const { uploadPart } = await this.transport.requestWithFile(
          UploadPartDocument,
          { uploadId, partNumber: part.n, chunk: null, chunkMd5: part.md5 ?? null },
          'chunk',
          part.bytes,
          signal,
          written,
        );
        return uploadPart;
      } catch (err) {
        if (signal?.aborted) throw abortReason(signal);
        if (isAbortError(err) || !(err instanceof UploadError)) throw err;
        if (!err.transient && err.code !== 'CHECKSUM_MISMATCH' && !this.briefRateLimit(err)) throw err;
        await this.pause(attempt, err, options);
      }
    }
  }

  /** RATE_LIMITED for too many chunks streaming at once (wait a second), not a login throttle's minutes. */
  private briefRateLimit(err: UploadError): boolean {
    const retryAfter = err.extensions.retryAfter;
    return err.code === 'RATE_LIMITED' && typeof retryAfter === 'number' && retryAfter <= BRIEF_RETRY_AFTER_S;
  }

  /** The parts of an upload in parts that its store lacks, all of them; a gone upload is a StartOver. */
  private async missingParts(upload: UploadState, slot: ResumeSlot | undefined, fresh: boolean, options: UploadOptions): Promise<Set<number>> {
    try {
      const state = (await this.withRetry(() => this.request(MissingPartsDocument, { id: upload.id, first: MAX_PARTS }, options.signal), options)).upload;
      return new Set(state?.status === 'UPLOADING' ? state.missingParts : []);
    } catch (err) {
      if (err instanceof UploadError && (err.code === 'NOT_FOUND' || err.code === 'UPLOAD_EXPIRED')) throw await this.startOver(upload.id, slot, fresh, err);
      throw err;
    }
  }

  /**
   * Reads the file's parts in order, feeding each to the whole-file md5 (when `hasher` is given),
   * and sends the missing ones, up to `parallel` at once and never more than `maxAhead` past the
   * lowest part still on its way. Progress: bytesUploaded grows by each part stored,
   * bytesTransferred adds the bytes of parts on their way and never goes back (a part sent again
   * is counted from where the bar already is). The first part that fails for good stops the
   * others from starting; those on their way are waited for, then its error is thrown.
   */
  private async sendParts<T>(
    source: ChunkSource,
    progress: UploadProgress,
    report: (patch: Partial<UploadProgress>) => void,
    signal: AbortSignal | undefined,
    plan: PartPlan<T>,
  ): Promise<void> {
    const { partSize, partCount, missing, hasher, partHasher } = plan;
    const size = source.size;
    const partBytes = (n: number) => Math.min(partSize, size - (n - 1) * partSize);
    const inFlight = new Map<number, Promise<void>>();
    /** Bytes of each part on its way that the connection has taken (in this attempt). */
    const written = new Map<number, number>();
    let failure: unknown;
    let group: PartToSend[] = [];
    const transferred = () => {
      let position = progress.bytesUploaded;
      for (const bytes of written.values()) position += bytes;
      return Math.max(progress.bytesTransferred, Math.min(position, size));
    };
    // With nothing on its way a part goes regardless: a refusal is retried, and asks the server again.
    const mayStart = (n: number) =>
      inFlight.size < plan.parallel &&
      (plan.maxAhead === undefined || inFlight.size === 0 || n <= Math.min(...inFlight.keys(), plan.serverFirstMissing?.() ?? Infinity) + plan.maxAhead);

    const launch = async () => {
      if (group.length === 0) return;
      const parts = group;
      group = [];
      const prepared = await plan.prepare(parts);
      for (const [i, part] of parts.entries()) {
        while (!failure && !mayStart(part.n)) await Promise.race(inFlight.values());
        if (failure) throw failure;
        const onWritten = (bytes: number) => {
          if (!inFlight.has(part.n)) return;
          written.set(part.n, bytes);
          report({ bytesTransferred: transferred() });
        };
        const sending = plan
          .send(part, prepared[i], onWritten)
          .then(
            () => {
              written.delete(part.n);
              const bytesUploaded = progress.bytesUploaded + part.bytes.length;
              report({ bytesSent: progress.bytesSent + part.bytes.length, bytesUploaded, bytesTransferred: Math.max(progress.bytesTransferred, bytesUploaded) });
            },
            (err: unknown) => {
              written.delete(part.n);
              failure ??= err;
            },
          )
          .finally(() => inFlight.delete(part.n));
        inFlight.set(part.n, sending);
      }
    };

    try {
      for (let n = 1; n <= partCount; n++) {
        throwIfAborted(signal);
        if (failure) throw failure;
        // Without the md5 to feed, parts already stored need not be read at all.
        if (!hasher && !missing.has(n)) continue;
        const start = (n - 1) * partSize;
        const bytes = await source.read(start, start + partBytes(n));
        if (bytes.length !== partBytes(n)) {
          throw new UploadError('CLIENT_ERROR', `${source.name} changed while uploading: expected ${partBytes(n)} bytes at ${start}, read ${bytes.length}.`);
        }
        if (hasher) {
          // A slice at a time, so the parts on their way meanwhile keep being written out.
          for (let from = 0; from < bytes.length; from += HASH_SLICE) {
            hasher.update(bytes.subarray(from, from + HASH_SLICE));
            await yieldToIo();
          }
          report({ bytesHashed: start + bytes.length, phase: missing.has(n) ? 'uploading' : 'hashing' });
        }
        if (!missing.has(n)) continue;
        let md5: string | undefined;
        if (partHasher) {
          partHasher.init();
          partHasher.update(bytes);
          md5 = partHasher.digest('hex');
        }
        group.push({ n, bytes, md5 });
        if (group.length >= plan.group) await launch();
      }
      await launch();
      await Promise.all(inFlight.values());
      if (failure) throw failure;
    } catch (err) {
      await Promise.allSettled(inFlight.values());
      if (signal?.aborted) throw abortReason(signal);
      throw err;
    }
  }

  /** Forgets (and aborts) an upload that cannot be finished; a StartOver once, the error after that. */
  private async startOver(uploadId: string, slot: ResumeSlot | undefined, fresh: boolean, err: UploadError): Promise<Error> {
    if (slot) await slot.store.remove(slot.key);
    if (fresh) return err;
    try {
      await this.request(AbortUploadDocument, { uploadId });
    } catch {
      // Already gone or expired: cleanup removes it either way.
    }
    return new StartOver(err.message);
  }

  /** The remembered (or given) upload for this file, if the server still takes chunks for it. */
  private async findResumable(source: ChunkSource, slot: ResumeSlot | undefined, options: UploadOptions): Promise<UploadState | undefined> {
    const id = options.uploadId ?? (await slot?.store.get(slot.key))?.uploadId;
    if (!id) return undefined;
    let state: UploadState | null;
    try {
      state = await this.withRetry(() => this.uploadState(id, options.signal), options);
    } catch (err) {
      if (!(err instanceof UploadError) || (err.code !== 'NOT_FOUND' && err.code !== 'BAD_USER_INPUT')) throw err;
      state = null;
    }
    // COMPLETE: it finished but the answer was lost; completing again (idempotent) returns the File.
    if (state && state.totalSize === source.size && (state.status === 'UPLOADING' || state.status === 'COMPLETE')) {
      if (slot && options.uploadId) await slot.store.set(slot.key, { uploadId: id, name: source.name, size: source.size, startedAt: Date.now() });
      return state;
    }
    if (slot) await slot.store.remove(slot.key);
    return undefined;
  }

  private async withRetry<T>(step: () => Promise<T>, options: UploadOptions): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await step();
      } catch (err) {
        if (options.signal?.aborted) throw abortReason(options.signal);
        if (!(err instanceof UploadError) || !err.transient) throw err;
        await this.pause(attempt, err, options);
      }
    }
  }

  /** Exponential backoff with jitter; gives up (rethrows) after `retries` attempts. */
  private async pause(attempt: number, err: UploadError, options: UploadOptions): Promise<void> {
    if (attempt >= this.retry.retries) throw err;
    const ceiling = Math.min(this.retry.maxDelayMs, this.retry.minDelayMs * 2 ** attempt);
    const retryAfter = typeof err.extensions.retryAfter === 'number' ? err.extensions.retryAfter * 1000 : 0;
    const delay = Math.max(retryAfter, Math.round(ceiling / 2 + (Math.random() * ceiling) / 2));
    options.onRetry?.(err, attempt + 1, delay);
    await sleep(delay, options.signal);
  }
}

/** Applies a change to `progress` and tells onProgress (a copy, so a listener cannot alter it). */
function progressReporter(progress: UploadProgress, options: UploadOptions): (patch: Partial<UploadProgress>) => void {
  return (patch) => {
    Object.assign(progress, patch);
    options.onProgress?.({ ...progress });
  };
}
