import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { expectCode } from './helpers/assert';
import { CHROMIUM, CHROMIUM_ARGS, collectPageErrors, NO_CHROMIUM } from './helpers/browser';
import { ME } from './helpers/client';
import { databaseKind } from './helpers/database';
import { ADMIN, startServer, type TestServer } from './helpers/server';

const root = path.resolve(__dirname, '../..');

describe(`the browser page's users and tokens views in headless Chromium (${databaseKind})`, { skip: NO_CHROMIUM }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    assert.ok(existsSync(path.join(root, 'public/js/web/app.js')), 'the page is not built: run `npm run build:client`');
    server = await startServer();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(20_000);
    collectPageErrors(page, pageErrors);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('an admin disables, promotes and deletes a user; anyone creates a token shown once and revokes it; Log out ends the token', async () => {
    const zoe = await server.admin.newUser('zoe');
    const zoeId = (await zoe.data(`{ me { id } }`)).me.id;

    await page.goto(server.url);
    await page.fill('#username', ADMIN.username);
    await page.fill('#password', ADMIN.password);
    await page.click('#login-button');
    await page.locator('#users-panel').waitFor({ state: 'visible' });
    const row = page.locator(`#users-body tr[data-user-id="${zoeId}"]`);

    // Buttons are named after the user they act on.
    await page.getByRole('button', { name: 'Disable zoe' }).click();
    await page.locator(`#users-body tr[data-user-id="${zoeId}"][data-disabled="true"]`).waitFor();
    expectCode(await zoe.request(ME), 'UNAUTHENTICATED', "zoe's session ended at once");

    await page.getByRole('button', { name: 'Make admin zoe' }).click();
    await page.getByRole('button', { name: 'Remove admin zoe' }).waitFor();
    assert.equal(await row.locator('td').nth(1).textContent(), 'admin');

    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Delete zoe' }).click();
    await row.waitFor({ state: 'detached' });
    assert.equal(Number((await server.sql(`select count(*) as n from users where id = ?`, [zoeId]))[0].n), 0);

    // Another tab logs out and in again: this one follows it (storage events), and must not gain
    // a second set of handlers (a merge once put the views' code inside that listener: one click,
    // two tokens).
    const otherTab = await page.context().newPage();
    await otherTab.goto(server.url);
    await otherTab.locator('#users-panel').waitFor({ state: 'visible' });
    await otherTab.click('#logout');
    await page.locator('#login-view').waitFor({ state: 'visible' });
    await otherTab.fill('#username', ADMIN.username);
    await otherTab.fill('#password', ADMIN.password);
    await otherTab.click('#login-button');
    await otherTab.locator('#users-panel').waitFor({ state: 'visible' });
    await otherTab.close();
    await page.locator('#users-panel').waitFor({ state: 'visible' });

    // A token: created, shown once, listed, working, then revoked.
    await page.fill('#token-name', 'nightly');
    await page.selectOption('#token-scope', 'READ');
    await page.click('#token-create');
    await page.locator('#new-token').waitFor({ state: 'visible' });
    const token = (await page.textContent('#new-token-value')) ?? '';
    assert.match(token, /^ucs_/);
    assert.equal(Number((await server.sql(`select count(*) as n from access_tokens where name = 'nightly'`))[0].n), 1, 'one click, one token');
    const script = server.client.withToken(token);
    assert.equal((await script.data(ME)).me.username, ADMIN.username);
    expectCode(await script.startUpload({ filename: 'x.bin', totalSize: 1 }), 'FORBIDDEN', 'READ only');
    const tokenRow = page.locator('#tokens-body tr[data-name="nightly"]');
    await tokenRow.waitFor();
    assert.ok(!(await page.locator('#tokens-table').textContent())!.includes(token), 'the list does not show the secret');
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Revoke nightly' }).click();
    await tokenRow.waitFor({ state: 'detached' });
    expectCode(await script.request(ME), 'UNAUTHENTICATED');

    const session = await page.evaluate(() => (globalThis as any).localStorage.getItem('chunked-upload-token') as string);
    await page.click('#logout');
    await page.locator('#login-view').waitFor({ state: 'visible' });
    expectCode(await server.client.withToken(session).request(ME), 'UNAUTHENTICATED', 'Log out ended the token on the server');
    assert.deepEqual(pageErrors, []);
  });
});
