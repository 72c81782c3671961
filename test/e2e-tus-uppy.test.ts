import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { build } from 'esbuild';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, collectPageErrors, NO_CHROMIUM } from './helpers/browser';
import { md5, type GraphQLClient } from './helpers/client';
import { seededBytes } from './helpers/seeded-bytes';
import { startServer, type TestServer } from './helpers/server';
import { withTimeout } from './helpers/timing';
import { uploadIdOf } from './helpers/tus';

const MiB = 1024 * 1024;
const root = path.resolve(__dirname, '../..');

const UPLOAD = `query($id: ID!) { upload(id: $id) { id status offset totalSize } }`;
const MY_UPLOADS = `{ myUploads { id status } }`;
const FILE = `query($id: ID!) { file(id: $id) { id name size md5 author { username } } }`;

/**
 * The page: an unmodified Uppy (@uppy/core + @uppy/tus) bundled now, served from an origin of
 * its own (as a site using this server would be), never from public/.
 */
async function servePage(): Promise<{ origin: string; close(): Promise<void> }> {
  const bundle = await build({
    entryPoints: [path.join(root, 'test/browser/uppy-tus-page.mjs')],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'chrome120',
    write: false,
    logLevel: 'warning',
  });
  const script = bundle.outputFiles[0].contents;
  const html = '<!doctype html><meta charset="utf-8"><title>Uppy to /tus/</title><link rel="icon" href="data:,"><script src="/uppy.js"></script>';
  const pages = http.createServer((req, res) => {
    if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
    else if (req.url === '/uppy.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(pages.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => pages.close(() => resolve())),
  };
}

describe('Uppy (@uppy/core + @uppy/tus) in headless Chromium against /tus/', { skip: NO_CHROMIUM }, () => {
  let pages: Awaited<ReturnType<typeof servePage>>;
  let server: TestServer;
  let alice: GraphQLClient;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    pages = await servePage();
    // The page's origin differs from the API's: the tus router's CORS rules are part of the test.
    server = await startServer({ CORS_ORIGINS: pages.origin });
    alice = await server.admin.newUser();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(20_000);
    collectPageErrors(page, pageErrors);
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    await pages?.close();
  });

  test('uploads with the bearer token, resumes after a reload mid-way from the server offset, and files the md5', async () => {
    const size = 8 * MiB + 12_345;
    const seed = 0x5eed;
    const bytes = seededBytes(size, seed);
    const file = { endpoint: `${server.url}/tus/`, token: alice.token!, chunkSize: MiB, size, seed, name: 'uppy-resumed.bin', md5: md5(Buffer.from(bytes)) };

    // What the server answered to the browser's tus requests (method, URL, status, Upload-Offset).
    const answers: { method: string; url: string; status: number; offset: string | undefined }[] = [];
    page.on('response', (res) => {
      if (!res.url().startsWith(`${server.url}/tus/`) || res.request().method() === 'OPTIONS') return;
      answers.push({ method: res.request().method(), url: res.url(), status: res.status(), offset: res.headers()['upload-offset'] });
    });
    // Three 1 MiB PATCHes go through; the fourth is held until the reload drops it, so the
    // reload lands in the middle of the upload however fast or slow the machine is.
    const STORED_BEFORE_RELOAD = 3 * MiB;
    let patches = 0;
    let holdingOne!: () => void;
    const holding = new Promise<void>((resolve) => (holdingOne = resolve));
    await page.route(`${server.url}/tus/**`, async (route) => {
      if (route.request().method() === 'PATCH' && ++patches * MiB > STORED_BEFORE_RELOAD) return holdingOne();
      await route.continue();
    });

    await page.goto(`${pages.origin}/`);
    // (Functions run in the page, where globalThis is the window; this file compiles without the DOM library.)
    await page.evaluate((args) => (globalThis as any).startUpload(args), file);
    await page.waitForFunction((min) => (globalThis as any).uppyState.error !== null || (globalThis as any).uppyState.progress.some((n: number) => n >= min), STORED_BEFORE_RELOAD);
    assert.equal(await page.evaluate(() => (globalThis as any).uppyState.error), null);
    await withTimeout(holding, 10_000, 'Uppy sent the fourth PATCH');

    const started = (await alice.data(MY_UPLOADS)).myUploads;
    assert.equal(started.length, 1, JSON.stringify(started));
    const id: string = started[0].id;
    await page.reload();
    await page.unroute(`${server.url}/tus/**`);
    const { upload: stopped } = await alice.data(UPLOAD, { id });
    assert.equal(stopped.status, 'UPLOADING');
    assert.equal(stopped.offset, STORED_BEFORE_RELOAD, 'the upload stopped mid-way');
    const answersBeforeReload = answers.length;

    // The same file again, after the reload: Uppy finds its stored URL and resumes.
    await page.evaluate((args) => (globalThis as any).startUpload(args), file);
    await page.waitForFunction(() => (globalThis as any).uppyState.done || (globalThis as any).uppyState.error !== null, null, { timeout: 30_000 });
    const finished = await page.evaluate(() => (globalThis as any).uppyState);
    assert.equal(finished.error, null);
    assert.equal(uploadIdOf(new URL(finished.uploadURL, server.url).href), id, 'the same upload was continued');

    // The server saw one creation in all, and the resumed client first asked where the upload stood.
    const resumed = answers.slice(answersBeforeReload);
    assert.deepEqual(
      answers.filter((a) => a.method === 'POST').map((a) => a.status),
      [201],
      'one tus POST for the file',
    );
    assert.deepEqual({ method: resumed[0]?.method, status: resumed[0]?.status }, { method: 'HEAD', status: 200 });
    assert.equal(Number(resumed[0].offset), STORED_BEFORE_RELOAD, 'HEAD answered where the upload stood');
    assert.ok(Math.min(...finished.progress) >= stopped.offset, `the page's progress restarted at ${Math.min(...finished.progress)}, not at the server offset`);
    assert.deepEqual(
      resumed.filter((a) => a.method === 'PATCH').map((a) => a.status),
      resumed.filter((a) => a.method === 'PATCH').map(() => 204),
    );
    const { myUploads } = await alice.data(MY_UPLOADS);
    assert.deepEqual(myUploads, [{ id, status: 'COMPLETE' }], 'one upload for the file on the server');

    // Filed in the library with the source's md5 (the upload id is the file id).
    const { file: filed } = await alice.data(FILE, { id });
    assert.equal(filed.md5, md5(Buffer.from(bytes)));
    assert.equal(filed.size, size);
    assert.equal(filed.name, 'uppy-resumed.bin');

    // Where the resuming came from: the URL Uppy's tus plugin stored by fingerprint survived the reload.
    const stored = (await page.evaluate(() => (globalThis as any).storedUploadUrls())) as string[];
    assert.deepEqual(stored.map((url) => uploadIdOf(new URL(url, server.url).href)), [id]);

    assert.deepEqual(pageErrors, []);
  });
});
