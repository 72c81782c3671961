import 'reflect-metadata';
import { ConnectionException, MikroORM } from '@mikro-orm/core';
import { knex } from '@mikro-orm/postgresql';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { openDatabase, ormOptions } from '../src/db/orm';
import { toDomainError } from '../src/error-edge';
import { AppError, ERROR_TABLE, Errors } from '../src/errors';
import { GraphQLClient } from './helpers/client';
import { expectCode } from './helpers/assert';
import { eventually } from './helpers/timing';
import { postgresProxy, startServerBehindProxy } from './helpers/postgres-proxy';
import { uploadFile } from './helpers/upload';
import { createTestDatabase, databaseKind, type TestDatabase } from './helpers/database';
import { startServer, type TestServer } from './helpers/server';

const PG_URL = process.env.TEST_DATABASE_URL;
const NEEDS_POSTGRES = PG_URL ? false : 'needs PostgreSQL: set TEST_DATABASE_URL';

/** What a plain HTTP error answer says: the status and the GraphQL-shaped body's first error. */
async function httpError(res: Response): Promise<{ status: number; code: string; message: string; contentType: string | null }> {
  const body = (await res.json()) as { errors: { message: string; extensions: { code: string } }[] };
  return { status: res.status, code: body.errors[0].extensions.code, message: body.errors[0].message, contentType: res.headers.get('content-type') };
}

/** A port on this machine nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A TCP server that treats each connection as `handle` says (a PostgreSQL that misbehaves). */
async function tcpServer(handle: (socket: net.Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe(`the error edge (${databaseKind})`, () => {
  describe('the table', () => {
    it('gives every code a GraphQL code and a 4xx or 5xx status, and every factory builds one of them', () => {
      for (const [code, { graphql, http }] of Object.entries(ERROR_TABLE)) {
        assert.match(graphql, /^[A-Z_]+$/, code);
        assert.ok(http >= 400 && http < 600, `${code}: HTTP ${http}`);
      }
      const samples: AppError[] = [
        Errors.unauthenticated(),
        Errors.forbidden('no'),
        Errors.notFound('File'),
        Errors.badInput('bad'),
        Errors.offsetMismatch(5),
        Errors.uploadLocked(),
        Errors.payloadTooLarge('big'),
        Errors.uploadIncomplete(1, 2),
        Errors.checksumMismatch('md5'),
        Errors.uploadExpired(),
        Errors.uploadNotActive('ABORTED'),
        Errors.rateLimited(30),
        Errors.storageUnavailable('full', 7),
        Errors.serviceUnavailable(),
        Errors.rangeNotSatisfiable(10),
        Errors.preflightRequired(),
        Errors.tooManyUploads(3),
        Errors.tusVersionUnsupported(),
        Errors.unsupportedMediaType('application/offset+octet-stream'),
        Errors.fileNotReady('VERIFYING'),
        Errors.quotaExceeded(1024),
      ];
      assert.deepEqual(new Set(samples.map((e) => e.code)), new Set(Object.keys(ERROR_TABLE)), 'one factory per code');
      for (const err of samples) {
        assert.ok(err instanceof AppError);
        assert.equal(err.httpStatus, ERROR_TABLE[err.code].http);
        assert.equal(err.graphqlCode, ERROR_TABLE[err.code].graphql);
      }
      assert.deepEqual(Errors.storageUnavailable('unreachable', 7).extensions, { expectedOffset: 7 });
      assert.match(Errors.storageUnavailable('unreachable', 7).message, /unreachable.*offset 7/);
      assert.deepEqual(Errors.rateLimited(30).extensions, { retryAfter: 30 });
    });
  });

  describe('plain HTTP answers: the table status, and the code GraphQL gives for the same failure', () => {
    let server: TestServer;
    let file: { id: string; size: number };

    before(async () => {
      server = await startServer();
      file = await uploadFile(server.admin, Buffer.from('0123456789'), 'edge.bin');
    });
    after(() => server?.close());

    it('NOT_FOUND: a download of an unknown file is 404, and so is the same id for GraphQL', async () => {
      const id = randomUUID();
      const download = await httpError(await fetch(`${server.url}/files/${id}/content`, { headers: server.admin.authHeaders() }));
      assert.equal(download.status, ERROR_TABLE.NOT_FOUND.http);
      assert.equal(download.code, 'NOT_FOUND');
      assert.match(download.contentType ?? '', /^application\/json/);
      expectCode(await server.admin.request(`mutation($id: ID!) { updateFile(id: $id, description: "x") { id } }`, { id }), 'NOT_FOUND');
    });

    it('UNAUTHENTICATED: a bad token is 401 for a download, with the message GraphQL gives', async () => {
      const stranger = GraphQLClient.for(server.url).withToken('not-a-token');
      const download = await httpError(await fetch(`${server.url}/files/${file.id}/content`, { headers: stranger.authHeaders() }));
      assert.equal(download.status, 401);
      const graphql = expectCode(await stranger.request(`{ me { id } }`), 'UNAUTHENTICATED');
      assert.equal(download.code, 'UNAUTHENTICATED');
      assert.equal(download.message, graphql.message);
    });

    it('a range past the end is 416 with Content-Range and BAD_USER_INPUT, as JSON rather than an attachment', async () => {
      const res = await fetch(`${server.url}/files/${file.id}/content`, { headers: { ...server.admin.authHeaders(), range: 'bytes=50-60' } });
      assert.equal(res.headers.get('content-range'), `bytes */${file.size}`);
      assert.equal(res.headers.get('content-disposition'), null);
      const answer = await httpError(res);
      assert.equal(answer.status, 416);
      assert.equal(answer.code, 'BAD_USER_INPUT');
    });

    it('transport: unreadable JSON is 400 BAD_USER_INPUT, a body over 1 MB is 413 PAYLOAD_TOO_LARGE, a multipart without preflight 400 BAD_REQUEST', async () => {
      const post = (body: string | FormData, headers: Record<string, string>) =>
        fetch(`${server.url}/graphql`, { method: 'POST', headers: { ...server.admin.authHeaders(), ...headers }, body });
      const json = { 'content-type': 'application/json' };
      assert.deepEqual(pick(await httpError(await post('{"query": ', json))), { status: 400, code: 'BAD_USER_INPUT' });
      const huge = JSON.stringify({ query: '{ me { id } }', variables: { pad: 'x'.repeat(1_100_000) } });
      assert.deepEqual(pick(await httpError(await post(huge, json))), { status: 413, code: 'PAYLOAD_TOO_LARGE' });
      const form = new FormData();
      form.set('operations', '{}');
      assert.deepEqual(pick(await httpError(await post(form, {}))), { status: 400, code: 'BAD_REQUEST' });
    });
  });

  describe('the database down, recognised by class, SQLSTATE or errno on real failures', () => {
    it('ECONNREFUSED: pg connecting to a port nobody listens on', async () => {
      const client = new pg.Client({ host: '127.0.0.1', port: await closedPort(), user: 'postgres', database: 'x' });
      const err = await client.connect().then(() => undefined, (e: unknown) => e);
      assert.equal((err as { code?: string }).code, 'ECONNREFUSED');
      assert.equal(toDomainError(err)?.code, 'SERVICE_UNAVAILABLE');
    });

    it("KnexTimeoutError: no connection within knex's acquireConnectionTimeout (a server that never answers)", async () => {
      const silent = await tcpServer(() => {});
      const db = knex({ client: 'pg', connection: { host: '127.0.0.1', port: silent.port, user: 'postgres' }, acquireConnectionTimeout: 300, pool: { min: 0, max: 1 } });
      try {
        const err = await db.raw('select 1').then(() => undefined, (e: unknown) => e);
        assert.ok(err instanceof knex.KnexTimeoutError, String(err));
        assert.equal(toDomainError(err)?.code, 'SERVICE_UNAVAILABLE');
      } finally {
        await silent.close();
        await db.destroy();
      }
    });

    it("a server hanging up during the handshake: pg's code-less error is a ConnectionException through the ORM's dialect, and only then recognised", async () => {
      const rude = await tcpServer((socket) => socket.end());
      const url = `postgresql://postgres@127.0.0.1:${rude.port}/x`;
      // Plain knex and pg: an Error with nothing but its text, which the edge does not read.
      const plain = knex({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
      const plainErr = await plain.raw('select 1').then(() => undefined, (e: unknown) => e);
      await plain.destroy();
      assert.match(String(plainErr), /Connection terminated unexpectedly/);
      assert.equal(toDomainError(plainErr), undefined, 'no message matching');
      // The server's ORM options: the same failure arrives as a ConnectionException.
      const orm = await MikroORM.init({ ...ormOptions({ databaseUrl: url, dataDir: os.tmpdir() }).options, connect: false });
      try {
        const err = await orm.em.getConnection().execute('select 1').then(() => undefined, (e: unknown) => e);
        assert.ok(err instanceof ConnectionException, String(err));
        assert.equal(toDomainError(err)?.code, 'SERVICE_UNAVAILABLE');
      } finally {
        await orm.close(true);
        await rude.close();
      }
    });

    describe('on PostgreSQL', { skip: NEEDS_POSTGRES }, () => {
      let database: TestDatabase;
      let dataDir: string;
      before(async () => {
        database = await createTestDatabase();
        dataDir = await mkdtemp(path.join(os.tmpdir(), 'error-edge-'));
      });
      after(async () => {
        await database?.drop();
        if (dataDir) await rm(dataDir, { recursive: true, force: true });
      });

      it('57P01: the backend terminated under a query (what a PostgreSQL shutdown sends)', async () => {
        const db = await openDatabase({ databaseUrl: database.url, dataDir, log: () => {} });
        try {
          const err = await db.orm.em.getConnection().execute('select pg_terminate_backend(pg_backend_pid())').then(() => undefined, (e: unknown) => e);
          assert.equal((err as { code?: string }).code, '57P01', String(err));
          assert.equal(toDomainError(err)?.code, 'SERVICE_UNAVAILABLE');
          // The pool drops the dead connection: the next query works.
          await eventually(async () => assert.deepEqual(await db.orm.em.getConnection().execute('select 1 as one'), [{ one: 1 }]));
        } finally {
          await db.close();
        }
      });

      it('a connection cut mid-query (no code from pg) is a ConnectionException', async () => {
        const proxy = await postgresProxy(new URL(PG_URL!));
        const db = await openDatabase({ databaseUrl: proxy.url(new URL(database.url!)), dataDir, log: () => {} });
        try {
          const sleeping = db.orm.em.getConnection().execute('select pg_sleep(2)').then(() => undefined, (e: unknown) => e);
          await new Promise((resolve) => setTimeout(resolve, 300));
          proxy.cut();
          const err = await sleeping;
          assert.ok(err instanceof ConnectionException, String(err));
          assert.equal((err as { code?: string }).code, undefined, 'pg gave it no code');
          assert.equal(toDomainError(err)?.code, 'SERVICE_UNAVAILABLE');
        } finally {
          await db.close();
          await proxy.down();
        }
      });

      it('a server whose database goes silent (no FIN, no RST) answers SERVICE_UNAVAILABLE after DATABASE_QUERY_TIMEOUT, then goes on', { timeout: 120_000 }, async () => {
        const { server, proxy, close } = await startServerBehindProxy({ DATABASE_QUERY_TIMEOUT: '2' });
        try {
          const files = () => server.admin.request(`{ files(first: 1) { totalCount } }`);
          assert.equal((await files()).status, 200);
          assert.ok(proxy.silence('') > 0, 'every open connection is silenced');
          const started = Date.now();
          const silent = await files();
          // (A GraphQL error: its token was served from the cache, the resolver's statement timed out.)
          expectCode(silent, 'SERVICE_UNAVAILABLE');
          assert.ok(Date.now() - started < 20_000, `answered after ${Date.now() - started} ms, not held until TCP gives up`);
          // Each dead connection is dropped from the pool when its turn comes (one timeout each);
          // new ones go through. (And the server
          // stops, below, although its listening connection is silenced too.)
          await eventually(async () => assert.equal((await server.admin.data(`{ files(first: 1) { totalCount } }`)).files.totalCount, 0), 15_000);
          // And so are statements inside a transaction (startUpload's quota check, its token likely cached).
          assert.ok(proxy.silence('') > 0);
          const start = () => server.admin.request(`mutation { startUpload(input: { filename: "silent.bin", totalSize: 10 }) { id } }`);
          expectCode(await start(), 'SERVICE_UNAVAILABLE');
          await eventually(async () => assert.equal((await start()).status, 200), 15_000);
        } finally {
          await close();
        }
      });

      it('a server whose database goes away answers SERVICE_UNAVAILABLE (downloads 503), then recovers by itself', { timeout: 60_000 }, async () => {
        const { server, proxy, close } = await startServerBehindProxy();
        try {
          const file = await uploadFile(server.admin, Buffer.from('still here'), 'outage.bin');
          const download = () => fetch(`${server.url}/files/${file.id}/content`, { headers: server.admin.authHeaders() });

          await proxy.down();
          const refused = await httpError(await download());
          assert.equal(refused.status, 503);
          assert.equal(refused.code, 'SERVICE_UNAVAILABLE');
          assert.doesNotMatch(refused.message, /ECONNREFUSED|terminat|127\.0\.0\.1/i, 'no internals');
          // The token cannot be checked: the request fails before it runs, with the table's status.
          const graphql = await server.admin.request(`{ files(first: 1) { totalCount } }`);
          expectCode(graphql, 'SERVICE_UNAVAILABLE');
          assert.equal(graphql.status, 503);
          // Without a token nothing needs the database until the resolver: a GraphQL error, HTTP 200.
          const login = await server.client.request(`mutation { login(username: "nobody", password: "whatever-it-is") { token } }`);
          expectCode(login, 'SERVICE_UNAVAILABLE');
          assert.equal(login.status, 200);
          assert.equal((await fetch(`${server.url}/healthz`)).status, 503);

          await proxy.up();
          await eventually(async () => assert.equal((await download()).status, 200), 10_000);
          assert.equal((await server.admin.data(`{ files(first: 1) { totalCount } }`)).files.totalCount, 1);
        } finally {
          await proxy.up();
          await close();
        }
      });
    });
  });
});

function pick(answer: { status: number; code: string }): { status: number; code: string } {
  return { status: answer.status, code: answer.code };
}
