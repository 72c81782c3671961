/**
 * The browser page (public/index.html): log in, upload with pause/resume (also across a
 * reload), list, download and delete files; one's access tokens; for admins, the users. The library,
 * your usage and your uploads on other tabs and devices follow the server live (GraphQL
 * subscriptions over WebSocket). Plain DOM code on top of the SDK; every text from the server goes
 * through textContent, never innerHTML.
 */
import {
  UploadClient,
  UploadError,
  formatBytes,
  isAbortError,
  type AccessTokenInfo,
  type AccountInfo,
  type FileInfo,
  type MyUpload,
  type TokenScope,
  type UploadProgress,
  type UploadState,
  type UserInfo,
} from '../src/browser.js';

type ServerLimits = Awaited<ReturnType<UploadClient['serverLimits']>>;

const TOKEN_KEY = 'chunked-upload-token';
const DAY_MS = 24 * 60 * 60 * 1000;
/** downloadUrl links live DOWNLOAD_LINK_TTL (15 min by default): older ones are fetched anew on click. */
const LINK_MAX_AGE_MS = 10 * 60 * 1000;
const MAX_PARALLEL_UPLOADS = 2;

const params = new URLSearchParams(location.search);
/** `?chunkSize=262144` overrides the SDK's default (8 MiB, capped by the server). */
const chunkSize = Number(params.get('chunkSize')) || undefined;
/** `?direct=false` sends the bytes through the server even when it offers direct uploads (a bucket without CORS rules for this page). */
const direct = params.get('direct') === 'false' ? false : 'auto';

// Same origin: the server serves this page. The token is kept in localStorage, so a reload, a
// new tab and a restarted browser stay logged in until it expires (JWT_TTL) or Log out.
const client = new UploadClient({ url: '', token: localStorage.getItem(TOKEN_KEY) ?? undefined });
let me: UserInfo | null = null;
/** The server's limits, asked once per login: a file over maxFileSize is refused before any upload. */
let limits: Promise<ServerLimits | undefined> = Promise.resolve(undefined);

const SESSION_ENDED = 'Your session has ended (it expired, or the password was changed): log in again.';

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing from the page`);
  return found as T;
}

function make<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...children: (Node | string)[]) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function describeError(err: unknown): string {
  if (err instanceof UploadError) {
    switch (err.code) {
      case 'UNAUTHENTICATED':
        return SESSION_ENDED;
      case 'FORBIDDEN':
        return 'Not allowed: only the author or an admin can do that.';
      case 'RATE_LIMITED':
        return `Too many failed logins: try again in ${Number(err.extensions.retryAfter ?? 60)} s.`;
      case 'NETWORK_ERROR':
        return 'The server cannot be reached.';
      default:
        return err.message;
    }
  }
  return err instanceof Error ? err.message : String(err);
}

let toastTimer: ReturnType<typeof setTimeout> | undefined;
function toast(message: string): void {
  const node = el('toast');
  node.textContent = message;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (node.hidden = true), 4000);
}

/** Any call that finds the session gone sends the user back to the login form. */
function handleAuthError(err: unknown): boolean {
  if (err instanceof UploadError && err.code === 'UNAUTHENTICATED') {
    logout(SESSION_ENDED);
    return true;
  }
  return false;
}

// ---------------------------------------------------------------- session

async function boot(): Promise<void> {
  let message = '';
  if (client.token) {
    try {
      me = await client.me();
    } catch (err) {
      // A kept token that no longer works is said so, not silently dropped.
      message = describeError(err);
      if (err instanceof UploadError && err.code === 'UNAUTHENTICATED') forgetToken();
      me = null;
    }
  }
  el('booting').hidden = true;
  if (me) showApp();
  else showLogin(message);
}

function forgetToken(): void {
  localStorage.removeItem(TOKEN_KEY);
  client.token = undefined;
}

// Another tab logged in or out: follow it, so no tab keeps working with a token that is gone.
window.addEventListener('storage', (event) => {
  if (event.key !== TOKEN_KEY && event.key !== null) return;
  const token = localStorage.getItem(TOKEN_KEY) ?? undefined;
  if (token === client.token) return;
  if (!token) {
    logout('Logged out in another tab.');
    return;
  }
  client.token = token;
  void boot();
});

function showLogin(message = ''): void {
  el('app-view').hidden = true;
  el('session').hidden = true;
  el('login-view').hidden = false;
  el('login-error').textContent = message;
  el<HTMLInputElement>('username').focus();
}

function showApp(): void {
  el('login-view').hidden = true;
  el('app-view').hidden = false;
  el('session').hidden = false;
  el('whoami').textContent = `${me!.username}${me!.isAdmin ? ' (admin)' : ''}`;
  limits = client.serverLimits().catch(() => undefined);
  void refreshInterrupted();
  void loadFiles(true);
  void loadTokens();
  el('users-panel').hidden = !me!.isAdmin;
  if (me!.isAdmin) void loadUsers(true);
  void refreshUsage();
  goLive();
}

// ---------------------------------------------------------------- live

let stopLive: (() => void)[] = [];
let liveReload: ReturnType<typeof setTimeout> | undefined;

/**
 * Subscriptions for as long as someone is logged in: a change to the library (anyone's, from any
 * instance) reloads the first page of the list and the usage, a little later so that a burst of
 * changes costs one reload; an upload of yours running elsewhere moves in "Your other uploads".
 */
function goLive(): void {
  endLive();
  stopLive = [
    client.live.libraryChanged({
      next: () => {
        clearTimeout(liveReload);
        liveReload = setTimeout(() => {
          void loadFiles(true);
          void refreshUsage();
        }, 200);
      },
      error: (err) => console.warn('library updates stopped', err),
    }),
    client.live.myUploadsChanged({
      next: (upload) => showOtherUpload(upload),
      error: (err) => console.warn('upload updates stopped', err),
    }),
    // Back after a dropped connection: whatever changed meanwhile was not sent.
    client.live.onReconnect(() => {
      void loadFiles(true);
      void refreshUsage();
      void refreshInterrupted();
    }),
  ];
}

function endLive(): void {
  for (const stop of stopLive) stop();
  stopLive = [];
  clearTimeout(liveReload);
}

/** An upload of yours that this page is not sending: moved in place, or the list read again when it starts or ends. */
function showOtherUpload(upload: MyUpload | UploadState): void {
  if (rows.some((row) => row.uploadId === upload.id)) return;
  // This page's own new upload, announced before startUpload's answer names it to its row.
  if (rows.some((row) => !row.uploadId && row.file.name === upload.filename && row.file.size === upload.totalSize)) return;
  const known = interrupted.find((u) => u.id === upload.id);
  if (!known || upload.status !== 'UPLOADING') {
    void refreshInterrupted();
    void refreshUsage();
    return;
  }
  Object.assign(known, { offset: upload.offset, totalSize: upload.totalSize, expiresAt: upload.expiresAt });
  const node = el('interrupted-list').querySelector<HTMLElement>(`[data-upload-id="${CSS.escape(upload.id)}"]`);
  node?.replaceWith(otherUploadNode(known));
}

async function refreshUsage(): Promise<void> {
  if (!me) return;
  try {
    const usage = await client.usage();
    if (!usage) return;
    const shown = el('usage');
    shown.textContent =
      usage.quotaBytes === null ? `${formatBytes(usage.usedBytes)} used` : `${formatBytes(usage.usedBytes)} of ${formatBytes(usage.quotaBytes)} used`;
    shown.classList.toggle('full', usage.quotaBytes !== null && usage.usedBytes >= usage.quotaBytes);
  } catch (err) {
    if (!handleAuthError(err)) console.warn('could not read the usage', err);
  }
}

function logout(message = ''): void {
  endLive();
  for (const row of rows) row.controller?.abort(new DOMException('Logged out', 'AbortError'));
  forgetToken();
  me = null;
  el('new-token').hidden = true;
  el('new-token-value').textContent = '';
  showLogin(message);
}

el<HTMLFormElement>('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const button = el<HTMLButtonElement>('login-button');
  button.disabled = true;
  el('login-error').textContent = '';
  try {
    const { token, user } = await client.login(el<HTMLInputElement>('username').value, el<HTMLInputElement>('password').value);
    localStorage.setItem(TOKEN_KEY, token);
    me = user;
    el<HTMLInputElement>('password').value = '';
    showApp();
  } catch (err) {
    el('login-error').textContent =
      err instanceof UploadError && err.code === 'UNAUTHENTICATED' ? 'Wrong username or password.' : describeError(err);
  } finally {
    button.disabled = false;
  }
});

// Log out ends the token on the server too, so a copy of it (another tab, a stolen one) stops working.
el('logout').addEventListener('click', async () => {
  await client.logout().catch(() => {});
  logout();
});

// ---------------------------------------------------------------- uploads

/** 'failed': an error that resuming cannot fix (too large, refused); 'error': one it may. */
type RowState = 'queued' | 'uploading' | 'paused' | 'done' | 'error' | 'failed';

/** Codes that sending the same file again cannot change. */
const FINAL_CODES = new Set(['PAYLOAD_TOO_LARGE', 'BAD_USER_INPUT', 'FORBIDDEN', 'QUOTA_EXCEEDED']);

interface UploadRow {
  file: File;
  state: RowState;
  controller?: AbortController;
  uploadId?: string;
  description: string;
  node: HTMLLIElement;
  progress: HTMLProgressElement;
  status: HTMLElement;
  pauseButton: HTMLButtonElement;
  cancelButton: HTMLButtonElement;
  clearButton: HTMLButtonElement;
}

const rows: UploadRow[] = [];
/** The server's UPLOADING uploads not running on this page: offered for resuming. */
let interrupted: MyUpload[] = [];

function sameFile(a: File, b: File): boolean {
  return a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;
}

function tooLarge(size: number, limit: number): string {
  return `${formatBytes(size)} is over the ${formatBytes(limit)} limit.`;
}

async function addFiles(files: Iterable<File>): Promise<void> {
  const description = el<HTMLInputElement>('description').value.trim();
  const known = await limits;
  for (const file of files) {
    const existing = rows.find((row) => sameFile(row.file, file) && row.state !== 'done' && row.state !== 'failed');
    if (existing) {
      // The same file again: resume it if it was paused or failed.
      if (existing.state === 'paused' || existing.state === 'error') enqueue(existing);
      continue;
    }
    const row = createRow(file, description);
    rows.push(row);
    el('upload-list').prepend(row.node);
    if (known && file.size > known.maxFileSize) setState(row, 'failed', tooLarge(file.size, known.maxFileSize));
    else enqueue(row);
  }
  updateClearFinished();
}

/** A button whose accessible name says which file it acts on ("Cancel photo.bin"). */
function rowButton(className: string, label: string, name: string): HTMLButtonElement {
  const button = make('button', { type: 'button', className, textContent: label });
  button.setAttribute('aria-label', `${label} ${name}`);
  return button;
}

function labelButton(button: HTMLButtonElement, label: string, name: string): void {
  button.textContent = label;
  button.setAttribute('aria-label', `${label} ${name}`);
}

function createRow(file: File, description: string): UploadRow {
  const progress = make('progress', { max: Math.max(file.size, 1), value: 0 });
  progress.setAttribute('aria-label', `Upload of ${file.name}`);
  const status = make('span', { className: 'status', textContent: 'Waiting…' });
  const pauseButton = rowButton('pause', 'Pause', file.name);
  const cancelButton = rowButton('cancel danger', 'Cancel', file.name);
  const clearButton = rowButton('clear', 'Clear', file.name);
  const node = make(
    'li',
    { className: 'upload' },
    make('span', { className: 'name', textContent: file.name, title: file.name }),
    make('span', { className: 'actions' }, pauseButton, cancelButton, clearButton),
    progress,
    status,
  );
  node.dataset.name = file.name;
  const row: UploadRow = { file, state: 'queued', description, node, progress, status, pauseButton, cancelButton, clearButton };
  pauseButton.addEventListener('click', () => {
    if (row.state === 'uploading' || row.state === 'queued') pause(row);
    else if (row.state === 'paused' || row.state === 'error') enqueue(row);
  });
  cancelButton.addEventListener('click', () => void cancel(row));
  clearButton.addEventListener('click', () => clear(row));
  return row;
}

function setState(row: UploadRow, state: RowState, message?: string): void {
  row.state = state;
  row.node.dataset.state = state;
  const finished = state === 'done' || state === 'failed';
  labelButton(row.pauseButton, state === 'paused' || state === 'error' ? 'Resume' : 'Pause', row.file.name);
  row.pauseButton.hidden = finished;
  // A failed file with nothing on the server has nothing to cancel: it is only cleared.
  row.cancelButton.hidden = state === 'done' || (state === 'failed' && !row.uploadId);
  row.clearButton.hidden = !finished;
  if (message !== undefined) row.status.textContent = message;
  updateClearFinished();
}

/** Takes a finished row off the list (the file stays in the library). */
function clear(row: UploadRow): void {
  const index = rows.indexOf(row);
  if (index >= 0) rows.splice(index, 1);
  row.node.remove();
  updateClearFinished();
}

function updateClearFinished(): void {
  el('clear-finished').hidden = !rows.some((row) => row.state === 'done' || row.state === 'failed');
}

el('clear-finished').addEventListener('click', () => {
  for (const row of rows.filter((r) => r.state === 'done' || r.state === 'failed')) clear(row);
});

function enqueue(row: UploadRow): void {
  setState(row, 'queued', 'Waiting…');
  pump();
}

function pump(): void {
  let running = rows.filter((row) => row.state === 'uploading').length;
  for (const row of rows) {
    if (running >= MAX_PARALLEL_UPLOADS) break;
    if (row.state !== 'queued') continue;
    running++;
    void run(row);
  }
}

function pause(row: UploadRow): void {
  if (row.state === 'queued') setState(row, 'paused', 'Paused.');
  // The SDK rejects with this reason; nothing on the server is deleted, so Resume continues.
  row.controller?.abort(new DOMException('Paused', 'AbortError'));
}

async function cancel(row: UploadRow): Promise<void> {
  row.controller?.abort(new DOMException('Cancelled', 'AbortError'));
  clear(row);
  if (row.uploadId) {
    try {
      await client.abortUpload(row.uploadId);
    } catch {
      // Already finished or gone: nothing left to cancel.
    }
  }
  pump();
}

async function run(row: UploadRow): Promise<void> {
  const controller = new AbortController();
  row.controller = controller;
  setState(row, 'uploading', 'Starting…');
  try {
    const result = await client.upload(row.file, {
      chunkSize,
      direct,
      description: row.description || undefined,
      signal: controller.signal,
      uploadId: await guessInterruptedUpload(row.file),
      onProgress: (p) => showProgress(row, p),
      onRetry: (err, attempt, delay) => {
        row.status.textContent = `${describeError(err)} Retrying in ${Math.ceil(delay / 1000)} s (attempt ${attempt})…`;
      },
    });
    row.progress.value = row.progress.max;
    setState(row, 'done', `Uploaded as ${result.file.name} · md5 ${result.md5}`);
    row.node.dataset.fileId = result.file.id;
    void loadFiles(true);
    void refreshUsage();
  } catch (err) {
    if (isAbortError(err) || controller.signal.aborted) {
      if (rows.includes(row)) setState(row, 'paused', `Paused at ${formatBytes(Number(row.progress.value))}. Resume continues from there.`);
    } else if (!handleAuthError(err)) {
      const final = err instanceof UploadError && FINAL_CODES.has(err.code);
      setState(row, final ? 'failed' : 'error', await describeUploadError(err, row.file));
    }
  } finally {
    if (row.controller === controller) row.controller = undefined;
    void refreshInterrupted();
    pump();
  }
}

/** A refused size in the same words as the check before uploading. */
async function describeUploadError(err: unknown, file: File): Promise<string> {
  const known = await limits;
  if (err instanceof UploadError && err.code === 'PAYLOAD_TOO_LARGE' && known && file.size > known.maxFileSize) {
    return tooLarge(file.size, known.maxFileSize);
  }
  return describeError(err);
}

/**
 * This browser remembers its uploads (localStorage, by name, size and lastModified). When it
 * has no record of this file but the server has an interrupted upload of the same name and
 * size (another browser, cleared storage), resume that one: the md5 at completion makes a
 * wrong guess harmless, since the SDK then starts a new upload.
 */
async function guessInterruptedUpload(file: File): Promise<string | undefined> {
  const remembered = (await client.store.entries()).some(([, record]) => record.name === file.name && record.size === file.size);
  if (remembered) return undefined;
  const busy = new Set(rows.map((row) => row.uploadId));
  return interrupted.find((upload) => upload.filename === file.name && upload.totalSize === file.size && !busy.has(upload.id))?.id;
}

function showProgress(row: UploadRow, p: UploadProgress): void {
  row.uploadId = p.uploadId;
  row.node.dataset.uploadId = p.uploadId;
  row.node.dataset.offset = String(p.bytesUploaded);
  row.node.dataset.resumedFrom = String(p.resumedFrom);
  const percent = p.totalBytes === 0 ? 100 : Math.floor((p.bytesUploaded / p.totalBytes) * 100);
  const resumed = p.resumedFrom > 0 ? ` · resumed at ${formatBytes(p.resumedFrom)}` : '';
  switch (p.phase) {
    case 'hashing':
      // The file is read for its md5 up to the bytes already on the server (an upload in parts:
      // between the parts it sends), so the bar stays at what the server holds.
      row.progress.value = p.bytesUploaded;
      row.status.textContent = `Reading ${formatBytes(p.bytesHashed)} of ${formatBytes(p.totalBytes)} to check the ${formatBytes(p.resumedFrom)} already on the server…`;
      break;
    case 'completing':
      row.progress.value = p.totalBytes;
      row.status.textContent = 'Verifying…';
      break;
    case 'verifying':
      row.progress.value = p.totalBytes;
      row.status.textContent = 'Sent to storage; the server is checking its md5…';
      break;
    default:
      row.progress.value = p.bytesUploaded;
      row.status.textContent = `${formatBytes(p.bytesUploaded)} of ${formatBytes(p.totalBytes)} · ${percent}%${resumed}`;
  }
  if (interrupted.some((u) => u.id === p.uploadId)) {
    // Now this row's: out of "Your other uploads" at once, so it is never shown twice.
    interrupted = interrupted.filter((u) => u.id !== p.uploadId);
    el('interrupted-list').querySelector(`[data-upload-id="${CSS.escape(p.uploadId)}"]`)?.remove();
    el('interrupted').hidden = interrupted.length === 0;
  }
}

/** One entry of "Your other uploads": where it stands, and Discard. */
function otherUploadNode(upload: MyUpload): HTMLElement {
  const discard = rowButton('danger', 'Discard', upload.filename);
  discard.addEventListener('click', async () => {
    discard.disabled = true;
    try {
      await client.abortUpload(upload.id);
    } catch (err) {
      toast(describeError(err));
    }
    void refreshInterrupted();
  });
  const percent = upload.totalSize === 0 ? 0 : Math.floor((upload.offset / upload.totalSize) * 100);
  const progress = make('progress', { max: Math.max(upload.totalSize, 1), value: upload.offset });
  progress.setAttribute('aria-label', `Upload of ${upload.filename}`);
  const node = make(
    'li',
    { className: 'upload' },
    make('span', { className: 'name', textContent: upload.filename, title: upload.filename }),
    make('span', { className: 'actions' }, discard),
    progress,
    make('span', {
      className: 'status',
      textContent: `${formatBytes(upload.offset)} of ${formatBytes(upload.totalSize)} · ${percent}% · kept until ${new Date(upload.expiresAt).toLocaleString()}`,
    }),
  );
  node.dataset.uploadId = upload.id;
  return node;
}

async function refreshInterrupted(): Promise<void> {
  if (!me) return;
  try {
    const mine = await client.myUploads('UPLOADING');
    // Uploads with a row on this page (running, paused or failed) have their own Resume button;
    // taken after the answer, for rows that learned their upload's id meanwhile.
    const busy = new Set(rows.map((row) => row.uploadId));
    interrupted = mine.filter((upload) => !busy.has(upload.id));
  } catch (err) {
    if (!handleAuthError(err)) toast(describeError(err));
    return;
  }
  el('interrupted-list').replaceChildren(...interrupted.map(otherUploadNode));
  el('interrupted').hidden = interrupted.length === 0;
}

const dropZone = el('drop-zone');
el<HTMLInputElement>('file-input').addEventListener('change', (event) => {
  const input = event.target as HTMLInputElement;
  if (input.files) void addFiles([...input.files]);
  input.value = '';
});
dropZone.addEventListener('dragover', (event) => {
  event.preventDefault();
  dropZone.classList.add('over');
});
dropZone.addEventListener('dragleave', () => dropZone.classList.remove('over'));
dropZone.addEventListener('drop', (event) => {
  event.preventDefault();
  dropZone.classList.remove('over');
  if (event.dataTransfer?.files.length) void addFiles([...event.dataTransfer.files]);
});
// A file dropped next to the zone would otherwise replace the page (and stop the uploads).
window.addEventListener('dragover', (event) => event.preventDefault());
window.addEventListener('drop', (event) => event.preventDefault());

// ---------------------------------------------------------------- library

let view: 'all' | 'old' = 'all';
let search = '';
let endCursor: string | null | undefined;
let loadSeq = 0;

async function loadFiles(reset: boolean): Promise<void> {
  if (!me) return;
  const seq = ++loadSeq;
  try {
    const page = await client.files({
      first: 20,
      after: reset ? undefined : endCursor,
      uploadedBefore: view === 'old' ? new Date(Date.now() - 30 * DAY_MS).toISOString() : undefined,
      search: search || undefined,
    });
    if (seq !== loadSeq) return; // a newer view or search has been asked for meanwhile
    const loadedAt = Date.now();
    const body = el('files-body');
    const fileRows = page.edges.map((edge) => fileRow(edge.node, loadedAt));
    if (reset) body.replaceChildren(...fileRows);
    else body.append(...fileRows);
    endCursor = page.pageInfo.endCursor;
    el('load-more').hidden = !page.pageInfo.hasNextPage;
    // One message when the list is empty: no header row, no "0 of 0 files".
    const empty = body.children.length === 0;
    el('files-table').hidden = empty;
    el('files-count').hidden = empty;
    el('files-empty').hidden = !empty;
    el('files-empty').textContent = search
      ? 'No file names match the search.'
      : view === 'old'
        ? 'No files older than 30 days.'
        : 'No files here yet.';
    el('files-count').textContent = `${body.children.length} of ${page.totalCount} file${page.totalCount === 1 ? '' : 's'}`;
  } catch (err) {
    if (!handleAuthError(err)) toast(describeError(err));
  }
}

function fileRow(file: FileInfo, loadedAt: number): HTMLTableRowElement {
  const link = make('a', { href: client.downloadUrl(file), textContent: file.name, className: 'download', title: `md5 ${file.md5}` });
  link.download = file.name;
  link.addEventListener('click', async (event) => {
    if (Date.now() - loadedAt < LINK_MAX_AGE_MS) return;
    // The signed link has (nearly) expired: fetch a fresh one, then follow it.
    event.preventDefault();
    try {
      const fresh = await client.file(file.id);
      if (!fresh) throw new Error('This file has been deleted.');
      link.href = client.downloadUrl(fresh);
      loadedAt = Date.now();
      link.click();
    } catch (err) {
      if (!handleAuthError(err)) toast(describeError(err));
    }
  });
  const actions = make('td');
  if (me && (me.isAdmin || file.author?.id === me.id)) {
    const del = rowButton('delete danger', 'Delete', file.name);
    del.addEventListener('click', async () => {
      if (!confirm(`Delete ${file.name}?`)) return;
      del.disabled = true;
      try {
        await client.deleteFile(file.id);
        tr.remove();
        toast(`${file.name} deleted.`);
        void loadFiles(true);
      } catch (err) {
        del.disabled = false;
        if (!handleAuthError(err)) toast(describeError(err));
      }
    });
    actions.append(del);
  }
  const tr = make(
    'tr',
    {},
    make('td', { className: 'name' }, link),
    make('td', { className: 'num', textContent: formatBytes(file.size), title: `${file.size} bytes` }),
    make('td', { textContent: new Date(file.uploadedAt).toLocaleString() }),
    make('td', { textContent: file.author?.username ?? '—' }),
    make('td', { className: 'description', textContent: file.description }),
    actions,
  );
  tr.dataset.fileId = file.id;
  tr.dataset.name = file.name;
  return tr;
}

function selectView(next: 'all' | 'old'): void {
  view = next;
  el('view-all').setAttribute('aria-selected', String(next === 'all'));
  el('view-old').setAttribute('aria-selected', String(next === 'old'));
  void loadFiles(true);
}

el('view-all').addEventListener('click', () => selectView('all'));
el('view-old').addEventListener('click', () => selectView('old'));
el('load-more').addEventListener('click', () => void loadFiles(false));
let searchTimer: ReturnType<typeof setTimeout> | undefined;
el<HTMLInputElement>('search').addEventListener('input', (event) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    search = (event.target as HTMLInputElement).value.trim();
    void loadFiles(true);
  }, 250);
});

// ---------------------------------------------------------------- access tokens

const SCOPE_WORDS: Record<TokenScope, string> = { READ: 'read', UPLOAD: 'upload', FULL: 'everything' };

const when = (iso: string | null | undefined, none: string) => (iso ? new Date(iso).toLocaleString() : none);

async function loadTokens(): Promise<void> {
  if (!me) return;
  try {
    const tokens = await client.myAccessTokens();
    el('tokens-body').replaceChildren(...tokens.map(tokenRow));
    el('tokens-table').hidden = tokens.length === 0;
    el('tokens-empty').hidden = tokens.length > 0;
  } catch (err) {
    if (!handleAuthError(err)) toast(describeError(err));
  }
}

function tokenRow(token: AccessTokenInfo): HTMLTableRowElement {
  const revoke = rowButton('danger', 'Revoke', token.name);
  revoke.addEventListener('click', async () => {
    if (!confirm(`Revoke the token ${token.name}? Whatever uses it stops working.`)) return;
    revoke.disabled = true;
    try {
      await client.revokeAccessToken(token.id);
      toast(`${token.name} revoked.`);
    } catch (err) {
      if (!handleAuthError(err)) toast(describeError(err));
    }
    void loadTokens();
  });
  const expired = token.expiresAt !== null && token.expiresAt !== undefined && new Date(token.expiresAt).getTime() <= Date.now();
  const tr = make(
    'tr',
    {},
    make('td', { textContent: token.name }),
    make('td', { textContent: token.scopes.map((scope) => SCOPE_WORDS[scope]).join(', ') }),
    make('td', { textContent: when(token.createdAt, '') }),
    make('td', { textContent: when(token.lastUsedAt, 'never') }),
    make('td', { textContent: expired ? 'expired' : when(token.expiresAt, 'never') }),
    make('td', {}, revoke),
  );
  tr.dataset.tokenId = token.id;
  tr.dataset.name = token.name;
  return tr;
}

el<HTMLFormElement>('token-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const button = el<HTMLButtonElement>('token-create');
  const days = el<HTMLInputElement>('token-days').value;
  button.disabled = true;
  try {
    const scope = el<HTMLSelectElement>('token-scope').value as TokenScope;
    const { token, accessToken } = await client.createAccessToken(el<HTMLInputElement>('token-name').value, [scope], days ? Number(days) : undefined);
    el('new-token-value').textContent = token;
    el('new-token').hidden = false;
    el('new-token').dataset.tokenId = accessToken.id;
    el<HTMLFormElement>('token-form').reset();
    el('copy-token').focus();
    void loadTokens();
  } catch (err) {
    if (!handleAuthError(err)) toast(describeError(err));
  } finally {
    button.disabled = false;
  }
});

el('copy-token').addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText(el('new-token-value').textContent ?? '');
    toast('Copied. It is not shown again once you leave this page.');
  } catch {
    // No clipboard (plain HTTP, or permission refused): the token stays on screen to copy by hand.
    toast('Could not copy: select the token and copy it by hand.');
  }
});

// ---------------------------------------------------------------- users (admins)

let usersCursor: string | null | undefined;

async function loadUsers(reset: boolean): Promise<void> {
  if (!me?.isAdmin) return;
  try {
    const page = await client.users({ first: 50, after: reset ? undefined : usersCursor });
    const body = el('users-body');
    const userRows = page.edges.map((edge) => userRow(edge.node));
    if (reset) body.replaceChildren(...userRows);
    else body.append(...userRows);
    usersCursor = page.pageInfo.endCursor;
    el('users-more').hidden = !page.pageInfo.hasNextPage;
    el('users-count').textContent = `${body.children.length} of ${page.totalCount} user${page.totalCount === 1 ? '' : 's'}`;
  } catch (err) {
    if (!handleAuthError(err)) toast(describeError(err));
  }
}

/** Runs an admin action on a user, then shows the list as it is now (or the error). */
async function adminAction(button: HTMLButtonElement, action: () => Promise<unknown>, done: string): Promise<void> {
  button.disabled = true;
  try {
    await action();
    toast(done);
  } catch (err) {
    if (handleAuthError(err)) return;
    toast(describeError(err));
  }
  // Demoting oneself ends this view: the page asks the server who it is now.
  if (me) me = (await client.me().catch(() => null)) ?? me;
  if (me && !me.isAdmin) showApp();
  else void loadUsers(true);
}

function userRow(user: AccountInfo): HTMLTableRowElement {
  const name = user.username;
  const promote = rowButton('promote', user.isAdmin ? 'Remove admin' : 'Make admin', name);
  promote.addEventListener('click', () =>
    void adminAction(promote, () => client.updateUser(user.id, { isAdmin: !user.isAdmin }), user.isAdmin ? `${name} is no longer an admin.` : `${name} is now an admin.`),
  );
  const disable = rowButton('disable', user.disabled ? 'Enable' : 'Disable', name);
  disable.addEventListener('click', () =>
    void adminAction(disable, () => client.updateUser(user.id, { disabled: !user.disabled }), user.disabled ? `${name} is enabled.` : `${name} is disabled: all their tokens stopped working.`),
  );
  const remove = rowButton('delete danger', 'Delete', name);
  remove.addEventListener('click', () => {
    if (!confirm(`Delete ${name}? Their files stay; their uploads in progress and their tokens are gone.`)) return;
    void adminAction(remove, () => client.deleteUser(user.id), `${name} deleted.`);
  });
  const tr = make(
    'tr',
    {},
    make('td', { textContent: name }),
    make('td', { textContent: user.isAdmin ? 'admin' : 'user' }),
    make('td', { textContent: user.disabled ? 'disabled' : 'active' }),
    make('td', { textContent: new Date(user.createdAt).toLocaleDateString() }),
    make('td', {}, promote, disable, remove),
  );
  tr.dataset.userId = user.id;
  tr.dataset.name = name;
  tr.dataset.disabled = String(user.disabled);
  return tr;
}

el('users-more').addEventListener('click', () => void loadUsers(false));

void boot();
