import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, collectPageErrors, NO_CHROMIUM } from './helpers/browser';
import { md5, randomFile } from './helpers/client';
import { ADMIN, startServer, type TestServer } from './helpers/server';
import { eventually, sleep } from './helpers/timing';

const HOSTNAME = 'files.example.test';
// A name that is not loopback, for the page opened by hostname over plain HTTP.
const ARGS = [...CHROMIUM_ARGS, `--host-resolver-rules=MAP ${HOSTNAME} 127.0.0.1`];
const KiB = 1024;
const MiB = 1024 * KiB;
const root = path.resolve(__dirname, '../..');

describe('the browser page in headless Chromium', { skip: NO_CHROMIUM }, () => {
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
    // A limit the size pre-check can be seen against (the main test's file is 3 MiB).
    server = await startServer({ MAX_FILE_SIZE: String(40 * MiB) });
    context = await chromium.launchPersistentContext(path.join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      acceptDownloads: true,
    });
    page = watched(context.pages()[0] ?? (await context.newPage()));
  });

  /** Page errors, console errors, 404s and failed requests end up in pageErrors. */
  function watched(p: Page): Page {
    p.setDefaultTimeout(20_000);
    // Chromium ignores Cross-Origin-Opener-Policy from a plain-HTTP origin that is not loopback, and says so.
    collectPageErrors(p, pageErrors, (text) => text.startsWith('The Cross-Origin-Opener-Policy header has been ignored'));
    p.on('response', (res) => {
      if (res.status() === 404) pageErrors.push(`404: ${res.url()}`);
    });
    return p;
  }

  const rowStatus = (p: Page, name: string) => p.locator(`#upload-list li[data-name="${name}"] .status`);

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

    // Slow each part down a little so the reload lands in the middle of the upload.
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
    // The parts in flight when Pause was pressed (four at once) may still have been stored: resumed from there or later.
    const resumedAt = Number(await row.getAttribute('data-resumed-from'));
    assert.ok(resumedAt >= pausedAt && resumedAt <= pausedAt + 4 * 128 * KiB, `Resume continued from the server offset (${resumedAt}, paused at ${pausedAt})`);

    // A reload in the middle of the upload.
    await offsetAtLeast(1536 * KiB);
    const uploadId = (await row.getAttribute('data-upload-id')) ?? '';
    assert.match(uploadId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

    await page.reload();
    await page.unroute('**/graphql');
    // Still logged in (the token is kept in localStorage); the server's upload is offered for resuming.
    await page.locator('#app-view').waitFor({ state: 'visible' });
    await page.locator(`#interrupted-list li[data-upload-id="${uploadId}"]`).waitFor();
    const stored = (await server.admin.getUpload(uploadId)).offset as number;
    const { partSize } = (await server.admin.data(`query($id: ID!) { upload(id: $id) { partSize } }`, { id: uploadId })).upload;
    assert.equal(partSize, 128 * KiB, 'the page sends parts (the server offers parallel parts), of its chunk size');
    assert.ok(stored > 0 && stored < bytes.length, `the upload stopped mid-way (offset ${stored})`);

    // Choosing the same file again resumes it from the server's offset. Waits for the row to
    // settle either way, so a failure says what the page showed (CI once saw it not done in 30 s).
    await page.setInputFiles('#file-input', filePath);
    await page.waitForFunction(() => ['done', 'error', 'failed'].includes((globalThis as any).document.querySelector('#upload-list li')?.dataset.state), null, {
      timeout: 90_000,
    });
    const settled = { state: await row.getAttribute('data-state'), text: await row.textContent(), server: await server.admin.data(`query($id: ID!) { upload(id: $id) { offset status missingParts } }`, { id: uploadId }) };
    assert.equal(settled.state, 'done', `the resumed upload did not finish: ${JSON.stringify(settled)}`);
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

  test('opened by hostname over plain HTTP, the page loads its CSS and JS (no upgrade to https)', async () => {
    const p = watched(await context.newPage());
    const failed: string[] = [];
    p.on('requestfailed', (req) => failed.push(`${req.url()}: ${req.failure()?.errorText}`));
    const port = new URL(server.url).port;
    try {
      await p.goto(`http://${HOSTNAME}:${port}/`);
      // Another origin: its own (empty) storage, so the login form.
      await p.locator('#login-view').waitFor({ state: 'visible' });
      assert.equal(await p.locator('#booting').isHidden(), true, 'not stuck on Loading…');
      // The stylesheet applied (the page's background colour).
      assert.equal(await p.evaluate(() => (globalThis as any).getComputedStyle((globalThis as any).document.body.parentElement).backgroundColor), 'rgb(245, 247, 250)');
      assert.deepEqual(failed, []);
      assert.deepEqual(pageErrors, []);
    } finally {
      await p.close();
    }
  });

  test('a new tab stays logged in; too large a file is refused up front in words; rows and buttons are named; finished rows clear', async () => {
    const p = watched(await context.newPage());
    const started: string[] = [];
    p.on('request', (req) => {
      const body = req.postData() ?? '';
      if (body.includes('startUpload')) started.push(body);
    });
    try {
      // Logged in by the first test, in another tab: the token is kept for the browser, not the tab.
      await p.goto(`${server.url}/?chunkSize=${128 * KiB}`);
      await p.locator('#app-view').waitFor({ state: 'visible' });
      assert.equal(await p.textContent('#whoami'), `${ADMIN.username} (admin)`);

      const big = path.join(dir, 'big.bin');
      await writeFile(big, '');
      await truncate(big, 60 * MiB);
      const slow = path.join(dir, 'slow.bin');
      await writeFile(slow, randomFile(768 * KiB));
      await p.route('**/graphql', async (route) => {
        if ((route.request().headers()['content-type'] ?? '').startsWith('multipart/')) await sleep(150);
        await route.continue().catch(() => {});
      });
      await p.setInputFiles('#file-input', [big, slow]);

      // The size pre-check: human words, nothing sent, nothing to resume, only to clear.
      await rowStatus(p, 'big.bin').filter({ hasText: 'limit' }).waitFor();
      assert.equal(await rowStatus(p, 'big.bin').textContent(), '60 MiB is over the 40 MiB limit.');
      assert.equal(await p.getByRole('button', { name: 'Resume big.bin' }).count(), 0);
      assert.equal(await p.getByRole('button', { name: 'Pause big.bin' }).count(), 0);
      await p.getByRole('button', { name: 'Clear big.bin' }).waitFor({ state: 'visible' });

      // A running upload: its progress bar and buttons say which file they belong to.
      await p.getByRole('progressbar', { name: 'Upload of slow.bin' }).waitFor();
      await p.getByRole('button', { name: 'Pause slow.bin' }).waitFor({ state: 'visible' });
      await p.getByRole('button', { name: 'Cancel slow.bin' }).waitFor({ state: 'visible' });
      await p.waitForFunction(() => (globalThis as any).document.querySelector('#upload-list li[data-name="slow.bin"]')?.dataset.state === 'done');
      await p.unroute('**/graphql');
      assert.equal(started.filter((body) => body.includes('big.bin')).length, 0, 'no startUpload for the file over the limit');
      assert.equal(started.filter((body) => body.includes('slow.bin')).length, 1);
      await p.getByRole('button', { name: 'Delete slow.bin' }).waitFor({ state: 'visible' });

      // Finished rows (done or refused) clear, one by one or all at once.
      await p.getByRole('button', { name: 'Clear big.bin' }).click();
      assert.equal(await p.locator('#upload-list li[data-name="big.bin"]').count(), 0);
      await p.getByRole('button', { name: 'Clear finished' }).click();
      assert.equal(await p.locator('#upload-list li').count(), 0);
      assert.equal(await p.locator('#clear-finished').isHidden(), true);
      assert.deepEqual(pageErrors, []);
    } finally {
      await p.close();
    }
  });

  test('the GraphQL explorer works offline: loads with every non-loopback request refused, runs { me { username } } with a bearer token', async () => {
    const p = watched(await context.newPage());
    const blocked: string[] = [];
    await p.route(
      (url) => url.hostname !== '127.0.0.1',
      (route) => {
        blocked.push(route.request().url());
        return route.abort('internetdisconnected');
      },
    );
    try {
      // GraphiQL reads the schema first (introspection needs no token); typing before it has made runs go missing.
      const schemaRead = p.waitForResponse((res) => (res.request().postData() ?? '').includes('IntrospectionQuery'));
      await p.goto(`${server.url}/graphql`);
      await schemaRead;
      const headers = p.locator('section[aria-label="Headers"] .graphiql-editor:not(.hidden) .CodeMirror');
      await headers.click();
      await p.keyboard.press('Control+A');
      await p.keyboard.insertText(JSON.stringify({ Authorization: `Bearer ${server.admin.token}` }));
      await p.locator('section[aria-label="Query Editor"] .CodeMirror').click();
      await p.keyboard.press('Control+A');
      await p.keyboard.insertText('{ me { username } }');
      // GraphiQL takes editor changes into its state after a debounce: a click right after typing
      // may run nothing, so click until the answer shows.
      const result = p.locator('section[aria-label="Result Window"]');
      await eventually(async () => {
        await p.getByRole('button', { name: /Execute query/ }).click();
        await result.filter({ hasText: '"username"' }).waitFor({ timeout: 2000 });
      }, 15_000);
      assert.match((await result.textContent()) ?? '', /"username":\s*"admin"/);
      assert.deepEqual(blocked, [], 'the explorer asked for nothing outside this server');
      assert.deepEqual(pageErrors, []);
    } finally {
      await p.close();
    }
  });

  test('a kept token that no longer works is said so on the login form', async () => {
    const p = watched(await context.newPage());
    try {
      await p.goto(`${server.url}/`);
      await p.locator('#app-view').waitFor({ state: 'visible' });
      // Changing the password revokes every token issued before, the page's included.
      const changed = await server.admin.request(`mutation($o: String!, $n: String!) { changePassword(oldPassword: $o, newPassword: $n) }`, {
        o: ADMIN.password,
        n: `${ADMIN.password}-changed`,
      });
      assert.equal(changed.data?.changePassword, true);
      await p.reload();
      await p.locator('#login-view').waitFor({ state: 'visible' });
      assert.equal(await p.textContent('#login-error'), 'Your session has ended (it expired, or the password was changed): log in again.');
      assert.equal(await p.evaluate(() => (globalThis as any).localStorage.getItem('chunked-upload-token')), null, 'the dead token is forgotten');
      assert.deepEqual(pageErrors, []);
    } finally {
      await p.close();
    }
  });
});
