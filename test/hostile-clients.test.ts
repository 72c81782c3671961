import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config';
import { healthStatus, randomFile, type GraphQLClient } from './helpers/client';
import { multipartHeaders, uploadChunkEnvelope } from './helpers/multipart';
import { openChunkRequest } from './helpers/raw-chunk';
import { startServer, type TestServer } from './helpers/server';
import { eventually, sleep, withTimeout } from './helpers/timing';
import { sendChunks } from './helpers/upload';

const MiB = 1024 * 1024;

/** A raw connection that sends `text` and then nothing; resolves when the server closes it. */
function sendAndHold(url: string, text: string): { connected: Promise<void>; closed: Promise<void>; socket: net.Socket } {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname, () => socket.write(text));
  socket.on('error', () => {});
  socket.resume();
  return {
    socket,
    connected: new Promise((resolve) => socket.once('connect', () => resolve())),
    closed: new Promise((resolve) => socket.once('close', () => resolve())),
  };
}

function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

/** GET /healthz on a connection of its own (fetch would reuse a pooled one); 0 if refused. */
function healthOnNewConnection(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(`${url}/healthz`, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
  });
}

/**
 * A multipart uploadChunk that keeps sending (up to `maxBytes`) until the server answers;
 * how much it managed to send and the answer.
 */
function floodChunk(client: GraphQLClient, uploadId: string, maxBytes: number): Promise<{ sent: number; status: number; body: any }> {
  const { contentType, head } = uploadChunkEnvelope(uploadId, 0);
  const url = new URL(`${client.url}/graphql`);
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const req = http.request({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: 'POST',
      headers: { ...multipartHeaders(contentType), 'content-length': String(head.length + 100 * 1024 * MiB), ...client.authHeaders() },
    });
    req.on('response', (res) => {
      answered = true;
      const parts: Buffer[] = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ sent, status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(parts).toString()) }));
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const piece = Buffer.alloc(256 * 1024, 7);
    const pump = () => {
      while (!answered && sent < maxBytes) {
        sent += piece.length;
        if (!req.write(piece)) return void req.once('drain', pump);
      }
    };
    req.write(head, pump);
  });
}

describe('hostile clients: deadlines, early refusals and caps', () => {
  let server: TestServer;
  let alice: GraphQLClient;

  before(async () => {
    server = await startServer({
      HEADERS_TIMEOUT: '1',
      REQUEST_TIMEOUT: '2',
      MAX_CHUNK_SIZE: String(MiB),
      MAX_STREAMS_PER_USER: '2',
      MAX_UPLOADS_IN_PROGRESS: '4',
      MAX_CONNECTIONS_PER_ADDRESS: '40',
    });
    alice = await server.admin.newUser();
  });
  after(() => server?.close());

  it('closes connections whose headers or JSON body never finish, and stays responsive meanwhile', async () => {
    const url = server.url;
    // The server runs in this process: its sockets are among our descriptors.
    const baselineFds = openDescriptors();
    const held = [
      ...Array.from({ length: 10 }, () => sendAndHold(url, 'POST /graphql HTTP/1.1\r\nHost: x\r\n')),
      ...Array.from({ length: 10 }, () =>
        sendAndHold(url, 'POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"query":'),
      ),
    ];
    await sleep(200);
    assert.ok(openDescriptors() >= baselineFds + 30, 'both ends of the held connections are counted here');
    const started = Date.now();
    assert.equal(await healthStatus(url), 200);
    assert.ok(Date.now() - started < 2000, '/healthz answers while the slow clients hold their connections');
    await withTimeout(Promise.all(held.map((h) => h.closed)), 15_000, 'the server closing every stalled connection');
    // Both ends of 20 connections were open: a server that kept its end would hold 20 more.
    await eventually(() => assert.ok(openDescriptors() <= baselineFds + 5, `descriptors back to ${baselineFds}, not ${openDescriptors()}`));
  });

  it('refuses an upload without a valid token after reading at most about the largest chunk, and says so', async () => {
    const upload = await alice.start('flood.bin', 10 * MiB);
    const baselineFds = openDescriptors();
    const floods = [alice.withToken(undefined), alice.withToken('not-a-token')].flatMap((client) => Array.from({ length: 4 }, () => floodChunk(client, upload.id, 64 * MiB)));
    for (const { sent, status, body } of await Promise.all(floods)) {
      assert.equal(status, 200);
      assert.equal(body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
      assert.ok(sent < 16 * MiB, `answered after ${sent} bytes of a body declaring 100 GiB`);
    }
    assert.equal((await alice.getUpload(upload.id)).offset, 0);
    // The server closes each refused connection: none of them (nor a file handle) stays open.
    await eventually(() => assert.ok(openDescriptors() <= baselineFds + 3, `descriptors back to ${baselineFds}, not ${openDescriptors()}`));
  });

  it('answers a chunk over MAX_CHUNK_SIZE without waiting for the rest of a huge body', async () => {
    const upload = await alice.start('too-big.bin', 10 * MiB);
    const { sent, body } = await floodChunk(alice, upload.id, 64 * MiB);
    assert.equal(body.errors?.[0]?.extensions?.code, 'PAYLOAD_TOO_LARGE');
    assert.ok(sent < 16 * MiB, `answered after ${sent} bytes`);
    assert.equal((await alice.getUpload(upload.id)).offset, 0);
    await sendChunks(alice, upload.id, randomFile(10 * MiB), 0, MiB, MiB);
  });

  it('cuts off a chunk that drips, releasing its lease', async () => {
    const upload = await alice.start('drip.bin', 100);
    const drip = openChunkRequest(alice, upload.id, 0);
    const cut = drip.response.then(
      () => 'answered',
      () => 'cut',
    );
    const dripping = setInterval(() => void drip.send(Buffer.from('x')).catch(() => {}), 2000);
    try {
      assert.equal(await withTimeout(cut, 30_000, 'the dripping chunk being cut off'), 'cut');
    } finally {
      clearInterval(dripping);
    }
    await eventually(async () => assert.equal((await alice.getUpload(upload.id)).offset, 0));
    await sendChunks(alice, upload.id, randomFile(100), 0, 100, 100);
  });

  it('caps the chunks one user streams at once (RATE_LIMITED) and the uploads one user keeps open (TOO_MANY_UPLOADS)', async () => {
    const bob = await server.admin.newUser();
    const uploads = [await bob.start('a.bin', 10), await bob.start('b.bin', 10), await bob.start('c.bin', 10)];
    const open = uploads.slice(0, 2).map((u) => openChunkRequest(bob, u.id, 0));
    await Promise.all(open.map((o) => o.send(Buffer.from('12345'))));
    await sleep(300);
    const third = openChunkRequest(bob, uploads[2].id, 0);
    await third.send(Buffer.from('12345'));
    const refused = await third.finish();
    assert.equal(refused.errors?.[0]?.extensions?.code, 'RATE_LIMITED');
    await open[0].send(Buffer.from('67890'));
    assert.equal((await open[0].finish()).errors, undefined);
    open[1].abort();

    await bob.start('d.bin', 10);
    const fifth = await bob.startUpload({ filename: 'e.bin', totalSize: 10 });
    assert.equal(fifth.errors?.[0]?.extensions?.code, 'TOO_MANY_UPLOADS');
    await bob.data(`mutation($id: ID!) { abortUpload(uploadId: $id) { status } }`, { id: uploads[1].id });
    assert.equal((await bob.startUpload({ filename: 'e.bin', totalSize: 10 })).errors, undefined, 'an aborted upload frees its place');
  });

  it('pages myUploads; the argument-free form still answers the first page', async () => {
    const carol = await server.admin.newUser();
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.unshift((await carol.start(`p${i}.bin`, 10)).id);
    const page = async (first: number, after?: string) =>
      (await carol.data(`query($first: Int!, $after: ID) { myUploads(first: $first, after: $after) { id } }`, { first, after })).myUploads.map((u: any) => u.id);
    assert.deepEqual(await page(3), ids.slice(0, 3));
    assert.deepEqual(await page(3, ids[2]), ids.slice(3));
    assert.deepEqual((await carol.data(`{ myUploads { id } }`)).myUploads.map((u: any) => u.id), ids);
    for (const first of [0, 501]) {
      const refused = await carol.request(`query($first: Int!) { myUploads(first: $first) { id } }`, { first });
      assert.equal(refused.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    }
  });

  it('refuses connections past MAX_CONNECTIONS_PER_ADDRESS and takes them again once some close', async () => {
    const idle = Array.from({ length: 40 }, () => sendAndHold(server.url, ''));
    await Promise.all(idle.map((h) => h.connected));
    assert.equal(await healthOnNewConnection(server.url), 0, 'the 41st connection is refused');
    idle.slice(0, 5).forEach((h) => h.socket.destroy());
    await eventually(async () => assert.equal(await healthOnNewConnection(server.url), 200));
    idle.forEach((h) => h.socket.destroy());
  });

  it('caps connections per address by default only when clients connect directly (behind a proxy all share its address)', () => {
    assert.equal(loadConfig({}).limits.maxConnectionsPerAddress, 128);
    assert.equal(loadConfig({ TRUST_PROXY: 'loopback' }).limits.maxConnectionsPerAddress, 0);
    assert.equal(loadConfig({ TRUST_PROXY: 'loopback', MAX_CONNECTIONS_PER_ADDRESS: '500' }).limits.maxConnectionsPerAddress, 500);
  });
});
