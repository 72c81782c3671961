import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, collectPageErrors, NO_CHROMIUM } from './helpers/browser';
import { CREATE_USER, md5, randomFile } from './helpers/client';
import { startServer, type TestServer } from './helpers/server';
import { eventually } from './helpers/timing';
import { sendChunks, uploadFile } from './helpers/upload';

const root = path.resolve(__dirname, '../..');

describe('the browser page follows the server live (headless Chromium)', { skip: NO_CHROMIUM }, () => {
  let server: TestServer;
  let dir: string;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    assert.ok(existsSync(path.join(root, 'public/vendor/graphql-ws/client.js')), 'the page is not built: run `npm run build:client`');
    dir = await mkdtemp(path.join(os.tmpdir(), 'e2e-live-'));
    server = await startServer({ DEFAULT_USER_QUOTA: '1MiB' });
    context = await chromium.launchPersistentContext(path.join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(20_000);
    collectPageErrors(page, pageErrors);
  });

  after(async () => {
    await context?.close();
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("shows another client's new file, and the user's own upload from another device moving, without a reload", async () => {
    await server.admin.data(CREATE_USER, { u: 'erin', p: 'erin-password-1', a: false });
    const erinElsewhere = await server.client.login('erin', 'erin-password-1');
    await page.goto(`${server.url}/`);
    await page.fill('#username', 'erin');
    await page.fill('#password', 'erin-password-1');
    await page.click('#login-button');
    await page.locator('#app-view').waitFor({ state: 'visible' });
    await page.locator('#usage', { hasText: '0 B of 1 MiB used' }).waitFor();
    await page.locator('#files-empty').waitFor({ state: 'visible' });
    // The page's subscriptions are in place before anything happens.
    await eventually(() => assert.equal(server.app.events.subscriberCount, 2, 'the page subscribed'), 20_000);

    // Someone else adds a file: it appears in the library.
    const file = await uploadFile(server.admin, randomFile(5000), 'from-the-admin.bin');
    await page.locator(`#files-body tr[data-file-id="${file.id}"]`).waitFor();

    // Erin's own upload from another device (the CLI, say): it shows up and moves.
    const bytes = randomFile(300 * 1024);
    const upload = await erinElsewhere.start('from-the-cli.bin', bytes.length);
    const entry = page.locator(`#interrupted-list [data-upload-id="${upload.id}"]`);
    await entry.waitFor();
    await page.locator('#usage', { hasText: '300 KiB of 1 MiB used' }).waitFor();
    await sendChunks(erinElsewhere, upload.id, bytes, 0, 200 * 1024, 100 * 1024);
    await page.waitForFunction(
      (id) => Number((globalThis as any).document.querySelector(`#interrupted-list [data-upload-id="${id}"] progress`)?.value) === 200 * 1024,
      upload.id,
    );
    await sendChunks(erinElsewhere, upload.id, bytes, 200 * 1024, bytes.length, 100 * 1024);
    await erinElsewhere.data(`mutation($id: ID!, $md5: String!) { completeUpload(uploadId: $id, md5: $md5) { id } }`, { id: upload.id, md5: md5(bytes) });
    await entry.waitFor({ state: 'detached' });
    await page.locator(`#files-body tr[data-file-id="${upload.id}"]`).waitFor();
    assert.deepEqual(pageErrors, []);
  });
});
