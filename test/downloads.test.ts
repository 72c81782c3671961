import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FILE_FIELDS, md5, randomFile, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { startServer, type TestServer } from './helpers/server';
import { sleep } from './helpers/timing';
import { uploadFile } from './helpers/upload';

/** The `?token=` of a downloadUrl. */
function linkToken(downloadUrl: string): string {
  const token = new URL(downloadUrl, 'http://x').searchParams.get('token');
  assert.ok(token, `no token in ${downloadUrl}`);
  return token;
}

function errorCode(body: Buffer): string | undefined {
  return JSON.parse(body.toString()).errors?.[0]?.extensions?.code;
}

describe(`downloads: GET /files/:id/content (${databaseKind})`, () => {
  const N = 10_000;
  let server: TestServer;
  let alice: GraphQLClient;
  let bob: GraphQLClient;
  let bytes: Buffer;
  let file: any;
  let other: any;

  before(async () => {
    server = await startServer();
    alice = await server.admin.newUser();
    bob = await server.admin.newUser();
    bytes = randomFile(N);
    file = await uploadFile(alice, bytes, 'data.bin', { chunkSize: 4096 });
    other = await uploadFile(alice, randomFile(300), 'other.bin');
  });
  after(() => server?.close());

  const path = () => `/files/${file.id}/content`;

  it('sends the whole file with Content-Length, ETag and Accept-Ranges', async () => {
    const res = await bob.download(path());
    assert.equal(res.status, 200);
    assert.equal(md5(res.body), md5(bytes));
    assert.equal(res.headers.get('content-length'), String(N));
    assert.equal(res.headers.get('etag'), `"${md5(bytes)}"`);
    assert.equal(res.headers.get('accept-ranges'), 'bytes');
    assert.equal(res.headers.get('content-range'), null);
  });

  describe('Range', () => {
    const cases: { name: string; header: () => string; start: () => number; end: () => number }[] = [
      { name: 'the first byte', header: () => 'bytes=0-0', start: () => 0, end: () => 0 },
      { name: 'the last byte', header: () => `bytes=${N - 1}-${N - 1}`, start: () => N - 1, end: () => N - 1 },
      { name: 'a middle range', header: () => 'bytes=1000-4999', start: () => 1000, end: () => 4999 },
      { name: 'a suffix range', header: () => 'bytes=-10', start: () => N - 10, end: () => N - 1 },
      { name: 'an open-ended range', header: () => 'bytes=5-', start: () => 5, end: () => N - 1 },
      { name: 'a range whose end passes the file (clamped)', header: () => `bytes=${N - 3}-${N + 500}`, start: () => N - 3, end: () => N - 1 },
    ];
    for (const c of cases) {
      it(`answers 206 for ${c.name}`, async () => {
        const res = await bob.download(path(), { range: c.header() });
        const start = c.start();
        const end = c.end();
        assert.equal(res.status, 206, `${c.header()}: ${res.body.toString().slice(0, 200)}`);
        assert.equal(res.headers.get('content-range'), `bytes ${start}-${end}/${N}`);
        assert.equal(res.headers.get('content-length'), String(end - start + 1));
        assert.equal(res.body.length, end - start + 1);
        assert.deepEqual(res.body, bytes.subarray(start, end + 1), 'exactly those bytes');
        assert.equal(res.headers.get('etag'), `"${md5(bytes)}"`);
      });
    }

    it('answers 416 with Content-Range bytes */N for a range that starts at or past the end', async () => {
      for (const header of [`bytes=${N}-`, `bytes=${N + 100}-${N + 200}`]) {
        const res = await bob.download(path(), { range: header });
        assert.equal(res.status, 416, header);
        assert.equal(res.headers.get('content-range'), `bytes */${N}`);
      }
    });

    it('sends the whole file when If-Range names another version', async () => {
      const res = await bob.download(path(), { range: 'bytes=0-9', 'if-range': '"0123456789abcdef0123456789abcdef"' });
      assert.equal(res.status, 200);
      assert.equal(res.body.length, N);
      const matching = await bob.download(path(), { range: 'bytes=0-9', 'if-range': `"${md5(bytes)}"` });
      assert.equal(matching.status, 206);
      assert.deepEqual(matching.body, bytes.subarray(0, 10));
    });
  });

  it('answers 304 to If-None-Match with the ETag, and 200 to another tag', async () => {
    const etag = `"${md5(bytes)}"`;
    const cached = await bob.download(path(), { 'if-none-match': etag });
    assert.equal(cached.status, 304);
    assert.equal(cached.body.length, 0);
    const list = await bob.download(path(), { 'if-none-match': `"nope", ${etag}` });
    assert.equal(list.status, 304);
    const changed = await bob.download(path(), { 'if-none-match': '"0123456789abcdef0123456789abcdef"' });
    assert.equal(changed.status, 200);
    assert.equal(md5(changed.body), md5(bytes));
  });

  it('answers HEAD with the headers and no body', async () => {
    const res = await fetch(`${server.url}${path()}`, { method: 'HEAD', headers: bob.authHeaders() });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(N));
    assert.equal((await res.arrayBuffer()).byteLength, 0);
  });

  it('sets Content-Type from the stored mime type, else application/octet-stream, always with nosniff', async () => {
    const pdf = await uploadFile(alice, randomFile(100), 'paper.pdf');
    assert.equal(pdf.mimeType, 'application/pdf');
    const unknown = await uploadFile(alice, randomFile(100), 'mystery.zzqx');
    assert.equal(unknown.mimeType, null);
    const html = await uploadFile(alice, Buffer.from('<b>x'.padEnd(5)), 'page.bin', { mimeType: 'text/html' });
    assert.equal(html.mimeType, 'text/html', 'the declared type wins over the name');

    for (const [f, type] of [
      [pdf, 'application/pdf'],
      [unknown, 'application/octet-stream'],
      [html, 'text/html'],
    ] as const) {
      const res = await bob.download(`/files/${f.id}/content`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type')?.split(';')[0].trim(), type, f.name);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.match(res.headers.get('content-disposition') ?? '', /^attachment\b/, 'always a download, never rendered inline');
    }
  });

  it('names the attachment with an RFC 6266 filename* that carries a Unicode name intact', async () => {
    const name = 'résumé 日本.txt';
    const unicode = await uploadFile(alice, Buffer.from('bonjour'), name);
    assert.equal(unicode.name, name);
    const res = await bob.download(`/files/${unicode.id}/content`);
    assert.equal(res.status, 200);
    // filename* carries the name percent-encoded in UTF-8 (it decodes to exactly `name`); the
    // plain filename is an ASCII fallback for old clients.
    assert.equal(res.headers.get('content-disposition'), `attachment; filename="r_sum_ __.txt"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.txt`);

    const tricky = `a"b;c%20'd.txt`;
    const trickyFile = await uploadFile(alice, Buffer.from('x'), tricky);
    const trickyRes = await bob.download(`/files/${trickyFile.id}/content`);
    assert.equal(
      trickyRes.headers.get('content-disposition'),
      `attachment; filename="a_b;c_20'd.txt"; filename*=UTF-8''a%22b%3Bc%2520%27d.txt`,
      'quotes, semicolons and percent signs survive in filename*',
    );
  });

  describe('authorization', () => {
    it('serves a downloadUrl without any Authorization header, Range included', async () => {
      const { file: fresh } = await bob.data(`query($id: ID!) { file(id: $id) { downloadUrl } }`, { id: file.id });
      assert.match(fresh.downloadUrl, new RegExp(`^/files/${file.id}/content\\?token=`));
      const res = await bob.download(fresh.downloadUrl, {}, false);
      assert.equal(res.status, 200);
      assert.equal(md5(res.body), md5(bytes));
      const ranged = await server.client.download(fresh.downloadUrl, { range: 'bytes=-10' });
      assert.equal(ranged.status, 206);
      assert.deepEqual(ranged.body, bytes.subarray(N - 10));
    });

    it("refuses a downloadUrl's token for another file's id", async () => {
      const token = linkToken(file.downloadUrl);
      const res = await server.client.download(`/files/${other.id}/content?token=${encodeURIComponent(token)}`);
      assert.equal(res.status, 401);
      assert.equal(errorCode(res.body), 'UNAUTHENTICATED');
      assert.notEqual(md5(res.body), md5(bytes));
      // And the link still works for its own file.
      assert.equal((await server.client.download(`/files/${file.id}/content?token=${encodeURIComponent(token)}`)).status, 200);
    });

    it('refuses no token, a garbage token, an access token as a link and a link as a bearer token', async () => {
      const none = await server.client.download(path());
      assert.equal(none.status, 401);
      assert.equal(errorCode(none.body), 'UNAUTHENTICATED');

      const garbage = await server.client.download(`${path()}?token=garbage`);
      assert.equal(garbage.status, 401);
      assert.equal(errorCode(garbage.body), 'UNAUTHENTICATED');

      const badBearer = await server.client.withToken('garbage').download(path());
      assert.equal(badBearer.status, 401);

      const accessAsLink = await server.client.download(`${path()}?token=${encodeURIComponent(bob.token!)}`);
      assert.equal(accessAsLink.status, 401, 'a login token is not a download link');

      const linkAsBearer = await server.client.withToken(linkToken(file.downloadUrl)).download(path());
      assert.equal(linkAsBearer.status, 401, 'a download link is not a login token');
      const linkForApi = await server.client.withToken(linkToken(file.downloadUrl)).request(`{ me { id } }`);
      assert.equal(linkForApi.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
    });

    it('answers 404 for an unknown or malformed id', async () => {
      const unknown = await bob.download(`/files/${randomUUID()}/content`);
      assert.equal(unknown.status, 404);
      assert.equal(errorCode(unknown.body), 'NOT_FOUND');
      assert.equal((await bob.download(`/files/not-an-id/content`)).status, 404);
    });
  });

  it('answers every refusal with error headers only: never the file\'s type, name, length, ETag or caching', async () => {
    // A browser saves an answer with Content-Disposition: attachment as the file, whatever its status.
    const iso = await uploadFile(alice, randomFile(2000), `big-${randomUUID()}.iso`);
    const url = (id: string) => `${server.url}/files/${id}/content`;
    const bearer = { authorization: `Bearer ${bob.token}` };
    const gone = await uploadFile(alice, randomFile(500), 'gone.iso');
    await rm(join(server.dataDir, 'files', gone.id));
    const cases: [string, () => Promise<Response>, number][] = [
      ['a range past the end', () => fetch(url(iso.id), { headers: { ...bearer, range: 'bytes=5000-' } }), 416],
      ['a range past the end, HEAD', () => fetch(url(iso.id), { method: 'HEAD', headers: { ...bearer, range: 'bytes=5000-' } }), 416],
      ['no token', () => fetch(url(iso.id)), 401],
      ["another file's link", () => fetch(`${url(iso.id)}?token=${linkToken(other.downloadUrl)}`), 401],
      ['an unknown id', () => fetch(url(randomUUID()), { headers: bearer }), 404],
      ['stored bytes that are gone', () => fetch(url(gone.id), { headers: bearer }), 0],
    ];
    for (const [what, send, status] of cases) {
      const res = await send();
      if (status) assert.equal(res.status, status, what);
      else assert.ok(res.status >= 400, `${what}: ${res.status}`);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/, what);
      for (const header of ['content-disposition', 'etag', 'accept-ranges']) assert.equal(res.headers.get(header), null, `${what}: ${header}`);
      assert.equal(res.headers.get('cache-control'), 'no-store', what);
      assert.equal(res.headers.get('content-range'), status === 416 ? `bytes */${iso.size}` : null, what);
      if (what.endsWith('HEAD')) continue;
      assert.ok(errorCode(Buffer.from(await res.arrayBuffer())), `${what}: a GraphQL-shaped error body`);
    }
  });

  it('expires a downloadUrl after DOWNLOAD_LINK_TTL seconds', async () => {
    // Long enough that the first download is surely inside it on a busy machine; the test then
    // waits for the link's own expiry rather than for a fixed time.
    const short = await startServer({ DOWNLOAD_LINK_TTL: '3' });
    try {
      const content = randomFile(64);
      const f = await uploadFile(short.admin, content, 'short.bin');
      const { file: fresh } = await short.admin.data(`query($id: ID!) { file(id: $id) { ${FILE_FIELDS} } }`, { id: f.id });
      const first = await short.client.download(fresh.downloadUrl);
      assert.equal(first.status, 200);
      assert.equal(md5(first.body), md5(content));
      const linkToken = new URL(fresh.downloadUrl, short.url).searchParams.get('token')!;
      const { exp } = JSON.parse(Buffer.from(linkToken.split('.')[1], 'base64url').toString());
      await sleep(Math.max(0, exp * 1000 - Date.now()) + 1100);
      const late = await short.client.download(fresh.downloadUrl);
      assert.equal(late.status, 401);
      assert.equal(errorCode(late.body), 'UNAUTHENTICATED');
      assert.equal((await short.admin.download(`/files/${f.id}/content`)).status, 200, 'a bearer token still works');
    } finally {
      await short.close();
    }
  });
});
