import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { expectCode } from './helpers/assert';
import { runCli, show, UPLOAD_CLI } from './helpers/cli';
import { md5, ME, randomFile } from './helpers/client';
import { databaseKind } from './helpers/database';
import { ProcessFixture } from './helpers/process';
import { ADMIN, withServer } from './helpers/server';
import { sendChunks, uploadFile } from './helpers/upload';

describe(`command-line account administration and an uploader with an access token (${databaseKind})`, () => {
  const fixture = new ProcessFixture();

  it('create-token prints a token upload-file takes from UPLOAD_TOKEN; disable-user and delete-user end it; the last admin stays', async () => {
    const env: Record<string, string> = { ...(await fixture.freshEnv('accounts-cli')), ADMIN_USERNAME: ADMIN.username, ADMIN_PASSWORD: ADMIN.password };
    const state = await fixture.tempDir('accounts-cli-state');
    let upload = { id: '' };
    let fileId = '';
    await withServer(env, async (client) => {
      const admin = await client.login(ADMIN.username, ADMIN.password);
      await admin.data(`mutation { createUser(username: "Ken", password: "ken-password") { id } }`);
      const ken = await client.login('ken', 'ken-password');
      fileId = (await uploadFile(ken, randomFile(100), 'kens.bin')).id;
      upload = await ken.start('kens-partial.bin', 1000);
      await sendChunks(ken, upload.id, randomFile(500), 0, 500, 500);
    });

    const created = await runCli(['create-token', 'KEN', '--name', 'nightly', '--scope', 'upload', '--expires-in-days', '30'], env);
    assert.equal(created.code, 0, show(created));
    assert.match(created.stdout, /^ucs_[A-Za-z0-9_-]{43}\n$/, 'only the token on standard output');
    assert.match(created.stderr, /created access token "nightly" \(.+\) for Ken, UPLOAD, until \d{4}-.*shown only this once/);
    const token = created.stdout.trim();
    const bad = await runCli(['create-token', 'ken', '--name', 'x', '--scope', 'ADMIN'], env);
    assert.equal(bad.code, 1, show(bad));
    assert.match(bad.stderr, /Unknown scope ADMIN: use READ, UPLOAD or FULL\.\n$/);

    const bytes = randomFile(3000);
    const source = path.join(state, 'build.tar');
    await writeFile(source, bytes);
    await withServer(env, async (client) => {
      const run = await runCli(['--quiet', source], { UPLOAD_URL: client.url, UPLOAD_TOKEN: token, XDG_STATE_HOME: state }, { script: UPLOAD_CLI });
      assert.equal(run.code, 0, show(run));
      assert.equal(JSON.parse(run.stdout).md5, md5(bytes));
      expectCode(await client.withToken(token).request(`mutation($id: ID!) { deleteFile(id: $id) }`, { id: fileId }), 'FORBIDDEN');
    });

    const disabled = await runCli(['disable-user', 'ken'], env);
    assert.equal(disabled.code, 0, show(disabled));
    assert.equal(disabled.stdout, 'disabled Ken\n');
    const listed = await runCli(['users'], env);
    assert.deepEqual(
      listed.stdout.trimEnd().split('\n').map((line) => line.split(/ +/).slice(0, 3)),
      [['USERNAME', 'ROLE', 'STATUS'], [ADMIN.username, 'admin', 'active'], ['Ken', 'user', 'disabled']],
    );
    await withServer(env, async (client) => {
      expectCode(await client.withToken(token).request(ME), 'UNAUTHENTICATED');
      expectCode(await client.request(`mutation { login(username: "ken", password: "ken-password") { token } }`), 'UNAUTHENTICATED');
    });
    assert.equal((await runCli(['disable-user', 'ken', '--enable'], env)).stdout, 'enabled Ken\n');

    const lastAdmin = await runCli(['delete-user', ADMIN.username], env);
    assert.equal(lastAdmin.code, 1, show(lastAdmin));
    assert.match(lastAdmin.stderr, /admin is the last admin: promote someone else first\.\n$/);

    const parts = async () => (await readdir(path.join(env.DATA_DIR, 'uploads'))).filter((name) => name.startsWith(upload.id));
    assert.notDeepEqual(await parts(), []);
    const deleted = await runCli(['delete-user', 'Ken'], env);
    assert.equal(deleted.code, 0, show(deleted));
    assert.match(deleted.stdout, /^deleted Ken \(.+\); their files stay, without an author\n$/);
    assert.deepEqual(await parts(), [], "Ken's partial upload is freed");
    await withServer(env, async (client) => {
      expectCode(await client.withToken(token).request(ME), 'UNAUTHENTICATED');
      const admin = await client.login(ADMIN.username, ADMIN.password);
      assert.equal((await admin.data(`query($id: ID!) { file(id: $id) { author { id } } }`, { id: fileId })).file.author, null);
    });
    const missing = await runCli(['delete-user', 'ken'], env);
    assert.equal(missing.code, 1, show(missing));
    assert.match(missing.stderr, /User "ken" not found\.\n$/);
  });
});
