import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, collectPageErrors, NO_CHROMIUM } from './helpers/browser';
import { md5, randomFile } from './helpers/client';
import { S3_SKIP, s3Endpoint, s3Env } from './helpers/s3';
import { ADMIN, startServer, type TestServer } from './helpers/server';
import { eventually } from './helpers/timing';

const MiB = 1024 * 1024;
const skip = S3_SKIP || NO_CHROMIUM;

/**
 * The bucket's CORS rules, as README.md asks for them (PUT, Content-MD5 allowed, ETag exposed),
 * in front of the test store: Swift's s3api has no bucket CORS of its own. It passes every
 * request through unchanged, Host included, so the signatures hold; the server signs for it
 * (S3_PUBLIC_ENDPOINT), as it would for a store reached under a public name.
 */
function corsFront(store: string, allowedOrigin: () => string, hold: (req: http.IncomingMessage) => boolean): Promise<http.Server> {
  const target = new URL(store);
  const cors = () => ({ 'access-control-allow-origin': allowedOrigin(), 'access-control-expose-headers': 'ETag', vary: 'Origin' });
  const server = http.createServer((req, res) => {
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...cors(), 'access-control-allow-methods': 'PUT', 'access-control-allow-headers': 'content-md5, content-type', 'access-control-max-age': '600' });
      res.end();
      return;
    }
    // A request the test holds back never reaches the store (the page gives up on it when it reloads).
    if (hold(req)) return;
    const upstream = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, { ...answer.headers, ...cors() });
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('the browser page uploading straight to the bucket', { skip }, () => {
  let server: TestServer;
  let front: http.Server;
  let dir: string;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];
  /** While true, the bucket's front holds back the PUTs of parts 2 and 3. */
  let holding = true;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'e2e-direct-'));
    let pageOrigin = '';
    front = await corsFront(s3Endpoint!, () => pageOrigin, (req) => holding && req.method === 'PUT' && /[?&]partNumber=[23](&|$)/.test(req.url ?? ''));
    const frontUrl = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
    server = await startServer({ ...s3Env(), S3_PUBLIC_ENDPOINT: frontUrl });
    pageOrigin = new URL(server.url).origin;
    context = await chromium.launchPersistentContext(path.join(dir, 'profile'), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, acceptDownloads: true });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(30_000);
    // The failed PUTs the test provokes are logged by Chromium itself.
    collectPageErrors(page, pageErrors, (text) => text.includes('net::ERR_FAILED'));
  });

  after(async () => {
    await context?.close();
    await server?.close();
    front?.closeAllConnections();
    front?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('sends the parts to the bucket, resumes after a reload with the parts the bucket lacks, and files the file READY', async () => {
    // Three parts of the SDK's 8 MiB.
    const bytes = randomFile(2 * 8 * MiB + 12345);
    const filePath = path.join(dir, 'direct-page.bin');
    await writeFile(filePath, bytes);

    await page.goto(server.url);
    await page.fill('#username', ADMIN.username);
    await page.fill('#password', ADMIN.password);
    await page.click('#login-button');
    await page.locator('#app-view').waitFor({ state: 'visible' });

    // Part 1 reaches the bucket; parts 2 and 3 are held until the page reloads.
    await page.setInputFiles('#file-input', filePath);
    const row = page.locator('#upload-list li.upload');
    await eventually(async () => assert.match((await row.getAttribute('data-upload-id')) ?? '', /^[0-9a-f-]{36}$/), 20_000);
    const uploadId = (await row.getAttribute('data-upload-id'))!;
    const missing = async () => (await server.admin.data(`query($id: ID!) { upload(id: $id) { direct missingParts } }`, { id: uploadId })).upload;
    await eventually(async () => assert.deepEqual(await missing(), { direct: true, missingParts: [2, 3] }), 30_000);

    await page.reload();
    holding = false;
    await page.locator('#app-view').waitFor({ state: 'visible' });
    await page.setInputFiles('#file-input', filePath);
    await page.waitForFunction(() => (globalThis as any).document.querySelector('#upload-list li')?.dataset.state === 'done', null, { timeout: 60_000 });
    assert.equal(await row.getAttribute('data-upload-id'), uploadId, 'the same upload was continued');
    assert.equal(Number(await row.getAttribute('data-resumed-from')), 8 * MiB, 'resumed with part 1 in the bucket');

    const file = (await server.admin.data(`query($id: ID!) { file(id: $id) { status md5 size } }`, { id: uploadId })).file;
    assert.deepEqual(file, { status: 'READY', md5: md5(bytes), size: bytes.length });
    const link = page.locator('#files-body tr[data-name="direct-page.bin"] a.download');
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    assert.equal(md5(await readFile((await download.path())!)), md5(bytes));
    assert.deepEqual(pageErrors, []);
  });
});
