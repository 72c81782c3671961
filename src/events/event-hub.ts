import type { Logger } from 'pino';
import type { File, User } from '../entities';
import type { AuthCache } from '../services/auth-cache';
import type { FileService } from '../services/file.service';
import type { UserService } from '../services/user.service';
import { UploadStatus, type ChunkedUpload } from '../uploads/chunked-upload.entity';
import type { UploadService } from '../uploads/upload.service';
import { AUTH_CHANNEL, LIBRARY_CHANNEL, UPLOAD_CHANNEL, type LibraryEventKind, type LibraryNotification, type UploadEvent } from './channels';
import type { NotificationListener } from './listener';
import { BoundedStream, KeyedStream, ProgressStream } from './streams';

/** API.md: progress at most every 250 ms an upload (status changes go out at once). */
export const PROGRESS_INTERVAL_MS = 250;
/** Library events one subscriber may have waiting before its connection is closed as too slow. */
export const LIBRARY_BACKLOG = 256;

/** What a ChunkedUpload answer shows: the row's fields, without the entity. */
export type UploadView = Pick<
  ChunkedUpload,
  'id' | 'filename' | 'description' | 'mimeType' | 'totalSize' | 'lengthDeferred' | 'offset' | 'status' | 'createdAt' | 'expiresAt' | 'partSize' | 'direct'
>;

/** Uploads of one user with a change waiting for a myUploadsChanged subscriber, before it is closed as too slow. */
export const MY_UPLOADS_BACKLOG = 1024;

/**
 * How far before the listener was found lost its notifications may have gone unheard: a silent
 * connection is found by its heartbeat (listener.ts) within about 10 s; the rest is clock skew
 * between this process and the database, whose clock stamps `updated_at`.
 */
const UNHEARD_BEFORE_LOSS_MS = 15_000;

export interface LibraryChange {
  kind: LibraryEventKind;
  file: File;
}

interface UploadSubscriber {
  ownerId: string;
  /** Takes a newer state of the upload (from a notification or a fresh read). */
  offer(event: Omit<UploadEvent, 'ownerId' | 'updatedAt'>): void;
  refresh(): Promise<void>;
}

/**
 * The process's side of LISTEN/NOTIFY: one listening connection (listener.ts), a registry of
 * this process's subscribers, and the fan-out from one to the other. A notification no
 * subscriber here waits for costs a map lookup; one that several wait for is decoded (and, for
 * the library, read) once.
 */
export class EventHub {
  private readonly uploads = new Map<string, Set<UploadSubscriber>>();
  /** Library subscribers, each with what ends its connection once it may have missed events. */
  private readonly library = new Map<BoundedStream<LibraryChange>, () => void>();
  /** myUploadsChanged subscribers by owner id. */
  private readonly owners = new Map<string, Set<(event: UploadEvent) => void>>();
  /** Library notifications are handled one after the other, so every subscriber sees commit order. */
  private libraryQueue: Promise<void> = Promise.resolve();
  /** When the listening connection was found lost; undefined while it listens. */
  private lostAt?: number;

  private constructor(
    private readonly listener: NotificationListener,
    private readonly services: { uploads: UploadService; files: FileService; users: UserService; authCache: AuthCache },
    private readonly log: Logger,
  ) {}

  static async start(listener: NotificationListener, services: EventHub['services'], log: Logger): Promise<EventHub> {
    const hub = new EventHub(listener, services, log);
    await listener.start(
      (channel, payload) => hub.dispatch(channel, payload),
      () => void hub.refreshAll(),
      (listening) => {
        if (!listening) hub.lostAt ??= Date.now();
        services.authCache.listenerConnected(listening);
      },
    );
    return hub;
  }

  /** Subscribers registered in this process right now (each upload's and the library's). */
  get subscriberCount(): number {
    let count = this.library.size;
    for (const subscribers of this.uploads.values()) count += subscribers.size;
    for (const subscribers of this.owners.values()) count += subscribers.size;
    return count;
  }

  async close(): Promise<void> {
    for (const stream of this.library.keys()) stream.close();
    await this.listener.close();
  }

  /**
   * The owner's upload as it moves: its current state first, then each newer one (progress
   * coalesced to PROGRESS_INTERVAL_MS), ending after a final status. Another user's upload is
   * NOT_FOUND, as `upload(id)` answers.
   */
  async uploadProgress(owner: User, uploadId: string): Promise<ProgressStream<UploadView>> {
    let current: UploadView | undefined;
    /** A notification that came while the first read was on its way. */
    let early: Omit<UploadEvent, 'ownerId' | 'updatedAt'> | undefined;
    const subscriber: UploadSubscriber = {
      ownerId: owner.id,
      offer: (event) => {
        if (!current) {
          if (!early || isNewer(early, event)) early = event;
          return;
        }
        if (!isNewer(current, event)) return;
        current = { ...current, ...pickMoving(event) };
        stream.push(current, current.status !== UploadStatus.UPLOADING);
      },
      refresh: async () => {
        const fresh = await this.services.uploads.get(owner, uploadId);
        subscriber.offer({ ...fresh, expiresAt: fresh.expiresAt.toISOString() });
      },
    };
    const stream = new ProgressStream<UploadView>(PROGRESS_INTERVAL_MS, () => this.removeUpload(uploadId, subscriber));
    // Registered before the first read, so nothing committed after that read is missed.
    this.addUpload(uploadId, subscriber);
    try {
      const upload = await this.services.uploads.get(owner, uploadId);
      current = viewOf(upload);
      if (early && isNewer(current, early)) current = { ...current, ...pickMoving(early) };
      stream.push(current, current.status !== UploadStatus.UPLOADING);
      return stream;
    } catch (err) {
      stream.close();
      throw err;
    }
  }

  /**
   * Every change to the library, in commit order; `tooSlow` when this subscriber falls
   * LIBRARY_BACKLOG behind, `missedEvents` when the listener was reconnecting (what was missed
   * cannot be read again: the subscriber must read the list afresh).
   */
  libraryChanges(tooSlow: () => void, missedEvents: () => void): BoundedStream<LibraryChange> {
    const stream: BoundedStream<LibraryChange> = new BoundedStream(LIBRARY_BACKLOG, tooSlow, () => this.library.delete(stream));
    this.library.set(stream, missedEvents);
    return stream;
  }

  /**
   * Every one of the owner's uploads as it moves, whichever device or instance sends it: one
   * started (by the page, the CLI, tus), its progress, its final status. Each upload's newest
   * state only, as the stream takes it; the first event of an upload is completed by one read.
   */
  myUploads(owner: User, tooSlow: () => void): KeyedStream<UploadView> {
    const known = new Map<string, UploadView>();
    const offer = (event: UploadEvent) => {
      const current = known.get(event.id);
      if (current) {
        if (!isNewer(current, event)) return;
        this.publishMine(stream, known, { ...current, ...pickMoving(event) });
        return;
      }
      // First sight of this upload here: its name and the rest come from one read.
      this.services.uploads.get(owner, event.id).then(
        (upload) => {
          const latest = known.get(event.id);
          const view = viewOf(upload);
          if (!latest || isNewer(latest, { ...view, expiresAt: view.expiresAt.toISOString() })) this.publishMine(stream, known, view);
        },
        () => {},
      );
    };
    const stream: KeyedStream<UploadView> = new KeyedStream(MY_UPLOADS_BACKLOG, tooSlow, () => {
      const subscribers = this.owners.get(owner.id);
      subscribers?.delete(offer);
      if (subscribers?.size === 0) this.owners.delete(owner.id);
    });
    const subscribers = this.owners.get(owner.id) ?? new Set();
    subscribers.add(offer);
    this.owners.set(owner.id, subscribers);
    return stream;
  }

  private publishMine(stream: KeyedStream<UploadView>, known: Map<string, UploadView>, view: UploadView): void {
    // A finished upload moves no more: nothing to remember it by.
    if (view.status === UploadStatus.UPLOADING) known.set(view.id, view);
    else known.delete(view.id);
    stream.push(view.id, view);
  }

  private addUpload(uploadId: string, subscriber: UploadSubscriber): void {
    const subscribers = this.uploads.get(uploadId) ?? new Set();
    subscribers.add(subscriber);
    this.uploads.set(uploadId, subscribers);
  }

  private removeUpload(uploadId: string, subscriber: UploadSubscriber): void {
    const subscribers = this.uploads.get(uploadId);
    if (!subscribers) return;
    subscribers.delete(subscriber);
    if (subscribers.size === 0) this.uploads.delete(uploadId);
  }

  private dispatch(channel: string, payload: string): void {
    try {
      if (channel === AUTH_CHANNEL) {
        this.services.authCache.notified(payload);
      } else if (channel === UPLOAD_CHANNEL) {
        if (this.uploads.size === 0 && this.owners.size === 0) return;
        const event = JSON.parse(payload) as UploadEvent;
        for (const subscriber of this.uploads.get(event.id) ?? []) {
          // The owner's alone, as the subscription was checked; a row cannot change owner, but say so here too.
          if (subscriber.ownerId === event.ownerId) subscriber.offer(event);
        }
        for (const offer of this.owners.get(event.ownerId) ?? []) offer(event);
      } else if (channel === LIBRARY_CHANNEL) {
        if (this.library.size === 0) return;
        const notification = JSON.parse(payload) as LibraryNotification;
        this.libraryQueue = this.libraryQueue.then(() => this.deliverLibrary(notification));
      }
    } catch (err) {
      this.log.error({ err, channel }, 'could not handle a notification');
    }
  }

  private async deliverLibrary(notification: LibraryNotification): Promise<void> {
    try {
      const file = await this.fileOf(notification);
      if (!file) return;
      const change = { kind: notification.kind, file };
      for (const stream of this.library.keys()) stream.push(change);
    } catch (err) {
      this.log.error({ err, fileId: notification.file.id }, 'could not deliver a library event');
    }
  }

  /**
   * The file as queries show it. Read afresh (once, for every subscriber here) unless it is gone:
   * a deleted file is rebuilt from the notification's copy of its row. Undefined for a file
   * deleted before it could be read: its DELETED event follows.
   */
  private async fileOf({ kind, file: row }: LibraryNotification): Promise<File | undefined> {
    if (kind !== 'DELETED') return (await this.services.files.findById(row.id)) ?? undefined;
    const authorId = typeof row.author_id === 'string' ? row.author_id : null;
    const author = authorId ? await this.services.users.findById(authorId) : null;
    return {
      id: row.id,
      name: String(row.name),
      description: typeof row.description === 'string' ? row.description : '',
      size: Number(row.size),
      md5: String(row.md5),
      mimeType: (row.mime_type as string | null) ?? null,
      uploadedAt: new Date(String(row.uploaded_at)),
      author,
    } as File;
  }

  /** After the listener reconnects: what subscribers may have missed meanwhile, read afresh. */
  private async refreshAll(): Promise<void> {
    const unheardSince = new Date((this.lostAt ?? Date.now()) - UNHEARD_BEFORE_LOSS_MS);
    this.lostAt = undefined;
    for (const subscribers of this.uploads.values()) {
      for (const subscriber of subscribers) await subscriber.refresh().catch(() => {});
    }
    // Each owner's uploads that moved meanwhile, as the notifications would have told them
    // (states the subscriber has seen already are dropped as not newer).
    try {
      const changed = await this.services.uploads.changedSince([...this.owners.keys()], unheardSince, MY_UPLOADS_BACKLOG);
      for (const upload of changed.reverse()) {
        const event = { ...viewOf(upload), ownerId: upload.owner.id, expiresAt: upload.expiresAt.toISOString(), updatedAt: upload.updatedAt.toISOString() };
        for (const offer of this.owners.get(event.ownerId) ?? []) offer(event);
      }
    } catch (err) {
      this.log.warn({ err }, 'could not tell myUploadsChanged subscribers what moved while the listener was reconnecting');
    }
    if (this.library.size > 0) {
      this.log.warn({ subscribers: this.library.size }, 'library events sent while the listener was reconnecting were lost: closing the connections of their subscribers');
      for (const missedEvents of [...this.library.values()]) missedEvents();
    }
  }
}

type Moving = Pick<UploadView, 'offset' | 'totalSize' | 'lengthDeferred' | 'status' | 'expiresAt'>;

function pickMoving(event: Omit<UploadEvent, 'ownerId' | 'updatedAt'>): Moving {
  return {
    offset: Number(event.offset),
    totalSize: Number(event.totalSize),
    lengthDeferred: event.lengthDeferred,
    status: event.status,
    expiresAt: new Date(event.expiresAt),
  };
}

/**
 * Whether `event` is a later state than `current`. Offsets only grow, a final status is final,
 * and a declared length stays declared: notifications that cross on their way (a trailing
 * progress notification and a commit's) never take a subscriber back.
 */
function isNewer(current: Pick<UploadView, 'offset' | 'status' | 'totalSize' | 'lengthDeferred'>, event: Omit<UploadEvent, 'ownerId' | 'updatedAt'>): boolean {
  if (current.status !== UploadStatus.UPLOADING) return false;
  if (event.status !== UploadStatus.UPLOADING) return true;
  const offset = Number(event.offset);
  if (offset !== Number(current.offset)) return offset > Number(current.offset);
  return current.lengthDeferred && !event.lengthDeferred;
}

function viewOf(upload: ChunkedUpload): UploadView {
  const { id, filename, description, mimeType, totalSize, lengthDeferred, offset, status, createdAt, expiresAt, partSize, direct } = upload;
  return { id, filename, description, mimeType, totalSize, lengthDeferred, offset, status, createdAt, expiresAt, partSize, direct };
}
