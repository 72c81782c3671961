import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BoundedStream, ProgressStream } from '../src/events/streams';
import { UploadClient, type LibraryChange } from '../client/src/node';
import { LISTENER_APPLICATION_NAME } from '../src/events/listener';
import { CREATE_USER, md5, randomFile, type GraphQLClient } from './helpers/client';
import { databaseKind, NEEDS_POSTGRES } from './helpers/database';
import { startServerBehindProxy, type PostgresProxy } from './helpers/postgres-proxy';
import { ProcessFixture } from './helpers/process';
import { startServer, type TestServer } from './helpers/server';
import { record, wsClient } from './helpers/subscriptions';
import { eventually, withTimeout } from './helpers/timing';
import { sendChunks, uploadFile } from './helpers/upload';

const PROGRESS = `subscription($id: ID!) { uploadProgress(uploadId: $id) { id offset totalSize status } }`;
const LIBRARY = `subscription { libraryChanged { kind file { id name description size author { username } } } }`;

describe(`subscriptions (${databaseKind})`, () => {
  let server: TestServer;
  let alice: GraphQLClient;
  let bob: GraphQLClient;
  const clients: { dispose(): void | Promise<void> }[] = [];
  const connect = (client: GraphQLClient | undefined, authorization = `Bearer ${client?.token}`) => {
    const ws = wsClient(server.url, authorization);
    clients.push(ws);
    return ws;
  };

  before(async () => {
    server = await startServer();
    [alice, bob] = [await server.admin.newUser(), await server.admin.newUser()];
  });
  after(async () => {
    for (const client of clients) await client.dispose();
    await server?.close();
  });

  it('refuses a connection without a token, with a bad one, or with one revoked since', async () => {
    for (const authorization of [undefined, 'Bearer not-a-token', `Basic ${alice.token}`]) {
      const closed = await withTimeout(connect(undefined, authorization as string).closed, 10_000, 'the refusal');
      assert.equal(closed.code, 4403, `${authorization}: ${closed.reason}`);
    }
    // A password change revokes every token issued before it.
    await server.admin.data(CREATE_USER, { u: 'carol', p: 'carol-password-1', a: false });
    const carol = await server.client.login('carol', 'carol-password-1');
    await carol.data(`mutation { changePassword(oldPassword: "carol-password-1", newPassword: "carol-password-2") }`);
    const closed = await withTimeout(connect(carol).closed, 10_000, 'the refusal of a revoked token');
    assert.equal(closed.code, 4403, closed.reason);
  });

  it("uploadProgress: the owner's upload in order, from where it stands to COMPLETE, at most every 250 ms; anyone else's is NOT_FOUND", async () => {
    const bytes = randomFile(64 * 1024);
    const upload = await alice.start('progress.bin', bytes.length);
    const ws = connect(alice);
    const progress = record(ws, PROGRESS, { id: upload.id });
    const stranger = record(connect(bob), PROGRESS, { id: upload.id });
    await withTimeout(stranger.ended, 10_000, "the stranger's subscription");
    assert.deepEqual(stranger.events, []);
    assert.equal((stranger.errors[0] as any)?.extensions?.code, 'NOT_FOUND', JSON.stringify(stranger.errors));

    await eventually(() => assert.equal(progress.events.length, 1, 'the state it is in comes first'));
    const started = Date.now();
    await sendChunks(alice, upload.id, bytes, 0, bytes.length, 1024);
    const sendingMs = Date.now() - started;
    const file = expectOkData(await alice.complete(upload.id, md5(bytes))).completeUpload;
    await withTimeout(progress.ended, 10_000, 'the end of the subscription after COMPLETE');

    const states = progress.events.map((e: any) => e.uploadProgress);
    assert.deepEqual(progress.errors, []);
    assert.deepEqual(states[0], { id: upload.id, offset: 0, totalSize: bytes.length, status: 'UPLOADING' });
    assert.deepEqual(states.at(-1), { id: upload.id, offset: bytes.length, totalSize: bytes.length, status: 'COMPLETE' });
    for (let i = 1; i < states.length; i++) {
      assert.ok(states[i].offset > states[i - 1].offset || states[i].status !== states[i - 1].status, `in order: ${JSON.stringify(states)}`);
    }
    // 64 chunks: throttled to one progress event every 250 ms (the first and the last states aside).
    const progressEvents = states.filter((s: any) => s.status === 'UPLOADING').length - 1;
    assert.ok(progressEvents <= Math.ceil(sendingMs / 250) + 2, `${progressEvents} progress events in ${sendingMs} ms`);
    assert.equal(file.id, upload.id);
  });

  it("myUploadsChanged: all of one's uploads from any client, started, moving and finished; nobody else's", async () => {
    const mine = record(connect(alice), `subscription { myUploadsChanged { id filename offset status } }`);
    await eventually(() => assert.equal(server.app.events.subscriberCount >= 1, true));
    await bob.start('not-alices.bin', 10);
    const bytes = randomFile(9000);
    const upload = await alice.start('elsewhere.bin', bytes.length);
    await sendChunks(alice, upload.id, bytes, 0, bytes.length, 3000);
    expectOkData(await alice.complete(upload.id, md5(bytes)));
    const aborted = await alice.start('given-up.bin', 10);
    expectOkData(await alice.abort(aborted.id));
    await eventually(() => assert.deepEqual(mine.events.at(-1)?.myUploadsChanged, { id: aborted.id, filename: 'given-up.bin', offset: 0, status: 'ABORTED' }));
    const states = mine.events.map((e: any) => e.myUploadsChanged);
    assert.deepEqual(mine.errors, []);
    assert.ok(states.every((u: any) => u.id === upload.id || u.id === aborted.id), 'only her own uploads');
    const first = states.filter((u: any) => u.id === upload.id);
    assert.deepEqual(first[0], { id: upload.id, filename: 'elsewhere.bin', offset: 0, status: 'UPLOADING' }, 'a new upload is told at once');
    assert.deepEqual(first.at(-1), { id: upload.id, filename: 'elsewhere.bin', offset: bytes.length, status: 'COMPLETE' });
    for (let i = 1; i < first.length; i++) assert.ok(first[i].offset >= first[i - 1].offset, JSON.stringify(first));
    mine.stop();
  });

  it('libraryChanged: every subscriber sees ADDED, UPDATED and DELETED in order, whoever made them', async () => {
    const watchers = [record(connect(alice), LIBRARY), record(connect(bob), LIBRARY)];
    await eventually(() => assert.equal(server.app.events.subscriberCount >= 2, true));
    const file = await uploadFile(alice, randomFile(3000), 'watched.bin');
    await alice.data(`mutation($id: ID!) { updateFile(id: $id, description: "new words") { id } }`, { id: file.id });
    await alice.data(`mutation($id: ID!) { deleteFile(id: $id) }`, { id: file.id });
    for (const watcher of watchers) {
      await eventually(() => assert.equal(watcher.events.filter((e: any) => e.libraryChanged.file.id === file.id).length, 3));
      const mine = watcher.events.map((e: any) => e.libraryChanged).filter((c: any) => c.file.id === file.id);
      assert.deepEqual(mine.map((c: any) => c.kind), ['ADDED', 'UPDATED', 'DELETED']);
      assert.equal(mine[1].file.description, 'new words');
      assert.deepEqual(mine[2].file, { id: file.id, name: 'watched.bin', description: 'new words', size: 3000, author: { username: mine[0].file.author.username } });
      watcher.stop();
    }
  });

  it('a subscriber that goes away leaves nothing behind: no registered subscriber, no extra listening connection', async () => {
    await eventually(() => assert.equal(server.app.events.subscriberCount, 0, 'earlier subscriptions ended'));
    const upload = await alice.start('watched-then-left.bin', 10);
    const ws = connect(alice);
    record(ws, PROGRESS, { id: upload.id });
    record(ws, LIBRARY);
    record(connect(bob), LIBRARY);
    await eventually(() => assert.equal(server.app.events.subscriberCount, 3));
    if (databaseKind === 'postgresql') assert.equal(await listenerConnections(server), 1, 'one LISTEN connection, whatever the subscribers');
    assert.match(await (await fetch(`${server.url}/metrics`)).text(), /^graphql_subscriptions 3$/m);
    for (const client of clients) await client.dispose();
    await eventually(() => assert.equal(server.app.events.subscriberCount, 0));
    if (databaseKind === 'postgresql') assert.equal(await listenerConnections(server), 1);
    assert.match(await (await fetch(`${server.url}/metrics`)).text(), /^graphql_subscriptions 0$/m);
  });

  it('serves only subscriptions over WebSocket, within the query limits', async () => {
    const ws = connect(alice);
    const query = record(ws, `{ me { id } }`);
    await withTimeout(query.ended, 10_000, 'the refusal');
    assert.equal((query.errors[0] as any)?.extensions?.code, 'BAD_REQUEST', JSON.stringify(query.errors));
    const deep = record(ws, `subscription { libraryChanged { ${Array.from({ length: 20 }, (_, i) => `k${i}: kind`).join(' ')} } }`);
    await withTimeout(deep.ended, 10_000, 'the refusal');
    assert.equal((deep.errors[0] as any)?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED', JSON.stringify(deep.errors));
  });

  function expectOkData(result: { errors?: unknown; data?: any }): any {
    assert.equal(result.errors, undefined, JSON.stringify(result.errors));
    return result.data;
  }
});

async function listenerConnections(server: TestServer): Promise<number> {
  const [row] = await server.sql('select count(*) as n from pg_stat_activity where datname = current_database() and application_name = ?', [LISTENER_APPLICATION_NAME]);
  return Number(row.n);
}

describe('subscriptions across two instances on one database', { skip: NEEDS_POSTGRES }, () => {
  const fixture = new ProcessFixture();

  it("an upload through instance A reaches subscribers on instance B, in order", async () => {
    const database = await fixture.database();
    const [a, b] = [await fixture.instance({}, undefined, database), await fixture.instance({}, undefined, database)];
    const onB = wsClient(b.url, `Bearer ${b.admin.token}`);
    fixture.defer(async () => onB.dispose());
    const bytes = randomFile(20_000);
    const upload = await a.admin.start('across.bin', bytes.length);
    const progress = record(onB, PROGRESS, { id: upload.id });
    const library = record(onB, LIBRARY);
    await eventually(() => assert.equal(progress.events.length, 1));
    await sendChunks(a.admin, upload.id, bytes, 0, bytes.length, 5_000);
    await a.admin.complete(upload.id, md5(bytes));
    await withTimeout(progress.ended, 10_000, 'COMPLETE on B');
    const states = progress.events.map((e: any) => e.uploadProgress);
    assert.deepEqual(states.at(-1), { id: upload.id, offset: bytes.length, totalSize: bytes.length, status: 'COMPLETE' });
    assert.deepEqual(states.map((s: any) => s.offset), [...states.map((s: any) => s.offset)].sort((x, y) => x - y));
    await eventually(() => assert.deepEqual(library.events.map((e: any) => [e.libraryChanged.kind, e.libraryChanged.file.id]), [['ADDED', upload.id]]));
  });
});

describe('subscriptions while the listening connection is lost (PostgreSQL)', { skip: NEEDS_POSTGRES }, () => {
  let proxy: PostgresProxy;
  let server: TestServer;
  let close = async () => {};
  before(async () => {
    ({ server, proxy, close } = await startServerBehindProxy());
  });
  after(() => close());

  it('uploadProgress and myUploadsChanged get the moves nobody heard, read afresh once it listens again', { timeout: 60_000 }, async () => {
    const ws = wsClient(server.url, `Bearer ${server.admin.token}`);
    const library = wsClient(server.url, `Bearer ${server.admin.token}`);
    // The SDK's subscriber: its socket comes back by itself, and tells it to read afresh.
    const sdk = new UploadClient({ url: server.url });
    sdk.token = server.admin.token;
    const sdkChanges: LibraryChange[] = [];
    let sdkReconnects = 0;
    const stopSdk = [sdk.live.libraryChanged({ next: (change) => sdkChanges.push(change) }), sdk.live.onReconnect(() => sdkReconnects++)];
    try {
      record(library, LIBRARY);
      const bytes = randomFile(3000);
      const upload = await server.admin.start('unheard.bin', bytes.length);
      const progress = record(ws, PROGRESS, { id: upload.id });
      const mine = record(ws, `subscription { myUploadsChanged { id offset status } }`);
      await eventually(() => assert.equal(server.app.events.subscriberCount, 4));
      await eventually(() => assert.equal(progress.events.length, 1));
      // Dropped without a word (no FIN, no RST): the commit's notification goes nowhere.
      assert.equal(proxy.silence(LISTENER_APPLICATION_NAME), 1, 'the listening connection is silenced');
      await sendChunks(server.admin, upload.id, bytes, 0, 1000, 1000);
      await eventually(() => {
        assert.deepEqual(progress.events.at(-1)?.uploadProgress, { id: upload.id, offset: 1000, totalSize: bytes.length, status: 'UPLOADING' });
        assert.deepEqual(mine.events.at(-1)?.myUploadsChanged, { id: upload.id, offset: 1000, status: 'UPLOADING' });
      }, 30_000);
      // Library events cannot be read again: their subscribers are told to come back and reread.
      const closed = await withTimeout(library.closed, 10_000, 'the library subscriber closed');
      assert.equal(closed.code, 1013);
      assert.match(closed.reason, /missed/);
      await eventually(() => assert.equal(sdkReconnects, 1, 'the SDK reconnected and said so'), 10_000);
      const file = await uploadFile(server.admin, randomFile(100), 'after-the-gap.bin');
      await eventually(() => assert.deepEqual(sdkChanges.map((c) => [c.kind, c.file.id]), [['ADDED', file.id]]), 10_000);
    } finally {
      for (const stop of stopSdk) stop();
      await sdk.live.close();
      await library.dispose();
      await ws.dispose();
    }
  });
});

describe(`subscriptions of the federation subgraph (${databaseKind})`, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ FEDERATION: 'true' });
  });
  after(() => server?.close());

  it('are served by the subgraph itself, for clients that subscribe to it directly', async () => {
    const ws = wsClient(server.url, `Bearer ${server.admin.token}`);
    try {
      const library = record(ws, LIBRARY);
      await eventually(() => assert.equal(server.app.events.subscriberCount, 1));
      const file = await uploadFile(server.admin, randomFile(100), 'federated.bin');
      await eventually(() => assert.deepEqual(library.events.map((e: any) => [e.libraryChanged.kind, e.libraryChanged.file.id]), [['ADDED', file.id]]));
    } finally {
      await ws.dispose();
    }
  });
});

describe(`subscriptions of a token revoked while connected (${databaseKind})`, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer({ SUBSCRIPTION_TOKEN_RECHECK: '1' });
  });
  after(() => server?.close());

  it('end: the socket is closed with 4403 once the token is checked again', async () => {
    await server.admin.data(CREATE_USER, { u: 'dora', p: 'dora-password-1', a: false });
    const dora = await server.client.login('dora', 'dora-password-1');
    const ws = wsClient(server.url, `Bearer ${dora.token}`);
    try {
      record(ws, LIBRARY);
      await eventually(() => assert.equal(server.app.events.subscriberCount, 1));
      await dora.data(`mutation { changePassword(oldPassword: "dora-password-1", newPassword: "dora-password-2") }`);
      const closed = await withTimeout(ws.closed, 20_000, 'the socket closed after the token was revoked');
      assert.equal(closed.code, 4403, closed.reason);
      await eventually(() => assert.equal(server.app.events.subscriberCount, 0));
    } finally {
      await ws.dispose();
    }
  });
});

describe('subscriber queues', () => {
  it('coalesce progress to the newest state and always deliver the final one', async () => {
    let closed = 0;
    const stream = new ProgressStream<number>(250, () => closed++);
    stream.push(1, false);
    assert.deepEqual(await stream.next(), { done: false, value: 1 });
    for (let i = 2; i <= 1000; i++) stream.push(i, false);
    assert.deepEqual(await stream.next(), { done: false, value: 1000 }, 'only the newest of the waiting states');
    stream.push(1001, false);
    stream.push(1002, true);
    assert.deepEqual(await stream.next(), { done: false, value: 1002 }, 'the final state without waiting, older progress dropped');
    assert.deepEqual(await stream.next(), { done: true, value: undefined });
    assert.equal(closed, 1);
  });

  it('close a subscriber that falls too far behind instead of queueing without bound', async () => {
    let overflowed = 0;
    let closed = 0;
    const stream = new BoundedStream<number>(3, () => overflowed++, () => closed++);
    for (let i = 0; i < 3; i++) stream.push(i);
    assert.equal(stream.pending, 3);
    stream.push(3);
    assert.equal(overflowed, 1);
    assert.equal(closed, 1);
    assert.equal(stream.pending, 0, 'what was waiting is let go');
    assert.deepEqual(await stream.next(), { done: true, value: undefined });
  });
});
