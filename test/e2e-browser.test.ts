import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { md5, randomFile } from './helpers/client';
import { ADMIN, startServer, type TestServer } from './helpers/server';
import { sleep } from './helpers/timing';

// Debian's package (apt-get install -y chromium), driven by playwright-core: no browser download.
const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];
const KiB = 1024;
const root = path.resolve(__dirname, '../..');
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium) to run the browser test`;

describe('the browser page in headless Chromium', { skip }, () => {
  let server: TestServer;
  let dir: string;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    assert.ok(
      existsSync(path.join(root, 'public/js/web/app.js')) && existsSync(path.join(root, 'public/vendor/hash-wasm/md5.umd.min.js')),
      'the page is not built: run `npm run build:client`',
    );
    dir = await mkdtemp(path.join(os.tmpdir(), 'e2e-browser-'));
    server = await startServer();
    context = await chromium.launchPersistentContext(path.join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      acceptDownloads: true,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(20_000);
    page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(`console: ${msg.text()}`);
    });
    page.on('response', (res) => {
      if (res.status() === 404) pageErrors.push(`404: ${res.url()}`);
    });
  });

  after(async () => {
    await context?.close();
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('log in, upload, reload mid-way, resume from the server offset, download the same bytes, delete', async () => {
    const bytes = randomFile(3 * 1024 * KiB + 4321);
    const filePath = path.join(dir, 'e2e-upload.bin');
    await writeFile(filePath, bytes);

    await page.goto(`${server.url}/?chunkSize=${128 * KiB}`);
    await page.fill('#username', ADMIN.username);
    await page.fill('#password', ADMIN.password);
    await page.click('#login-button');
    await page.locator('#app-view').waitFor({ state: 'visible' });
    assert.equal(await page.textContent('#whoami'), `${ADMIN.username} (admin)`);

    // Slow each chunk down a little so the reload lands in the middle of the upload.
    await page.route('**/graphql', async (route) => {
      if ((route.request().headers()['content-type'] ?? '').startsWith('multipart/')) await sleep(80);
      // The page may have dropped the request meanwhile (Pause, reload).
      await route.continue().catch(() => {});
    });
    await page.setInputFiles('#file-input', filePath);
    const row = page.locator('#upload-list li.upload');
    // (Expressions as strings: this file is compiled without the DOM's types.)
    // Functions, not strings: the page's CSP forbids evaluating strings as code. They run in the
    // page (globalThis is the window there); this file compiles without the DOM library.
    const offsetAtLeast = (bytes: number) =>
      page.waitForFunction((min) => Number((globalThis as any).document.querySelector('#upload-list li')?.dataset.offset ?? 0) >= min, bytes);

    // Pause and resume on the page.
    await offsetAtLeast(256 * KiB);
    await row.locator('button.pause').click();
    await page.waitForFunction(() => (globalThis as any).document.querySelector('#upload-list li')?.dataset.state === 'paused');
    const pausedAt = Number(await row.getAttribute('data-offset'));
    assert.equal(await row.locator('button.pause').textContent(), 'Resume');
    await row.locator('button.pause').click();
    await offsetAtLeast(pausedAt + 256 * KiB);
    // A chunk in flight when Pause was pressed may still have been stored: resumed from there or later.
    const resumedAt = Number(await row.getAttribute('data-resumed-from'));
    assert.ok(resumedAt >= pausedAt && resumedAt <= pausedAt + 128 * KiB, `Resume continued from the server offset (${resumedAt}, paused at ${pausedAt})`);

    // A reload in the middle of the upload.
    await offsetAtLeast(1536 * KiB);
    const uploadId = (await row.getAttribute('data-upload-id')) ?? '';
    assert.match(uploadId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

    await page.reload();
    await page.unroute('**/graphql');
    // Still logged in (the token lives for the tab); the server's upload is offered for resuming.
    await page.locator('#app-view').waitFor({ state: 'visible' });
    await page.locator(`#interrupted-list li[data-upload-id="${uploadId}"]`).waitFor();
    const stored = (await server.admin.getUpload(uploadId)).offset as number;
    assert.ok(stored > 0 && stored < bytes.length, `the upload stopped mid-way (offset ${stored})`);

    // Choosing the same file again resumes it from the server's offset.
    await page.setInputFiles('#file-input', filePath);
    await page.waitForFunction(() => (globalThis as any).document.querySelector('#upload-list li')?.dataset.state === 'done', null, {
      timeout: 30_000,
    });
    assert.equal(await row.getAttribute('data-upload-id'), uploadId, 'the same upload was continued');
    const resumedFrom = Number(await row.getAttribute('data-resumed-from'));
    assert.ok(resumedFrom >= stored, `resumed from ${resumedFrom}, the server had ${stored}`);
    await page.locator(`#interrupted-list li[data-upload-id="${uploadId}"]`).waitFor({ state: 'detached' });

    // Download through the page's own link (a signed downloadUrl) and compare the bytes.
    const link = page.locator('#files-body tr[data-name="e2e-upload.bin"] a.download');
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    assert.equal(download.suggestedFilename(), 'e2e-upload.bin');
    const downloaded = await readFile((await download.path())!);
    assert.equal(downloaded.length, bytes.length);
    assert.equal(md5(downloaded), md5(bytes));

    // The admin may delete it; the list follows.
    page.once('dialog', (dialog) => void dialog.accept());
    await page.click('#files-body tr[data-name="e2e-upload.bin"] button.delete');
    await page.locator('#files-body tr[data-name="e2e-upload.bin"]').waitFor({ state: 'detached' });
    assert.equal((await server.admin.data('{ files { totalCount } }')).files.totalCount, 0);

    assert.deepEqual(pageErrors, []);
  });
});
