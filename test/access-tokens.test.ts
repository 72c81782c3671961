import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { expectCode } from './helpers/assert';
import { ME, randomFile, tag, type GraphQLClient } from './helpers/client';
import { databaseKind } from './helpers/database';
import { startServer, type TestServer } from './helpers/server';
import { eventually, sleep } from './helpers/timing';
import { b64, tusRequest, tusUpload } from './helpers/tus';
import { sendChunks, uploadFile, verifyDownload } from './helpers/upload';

const CREATE = `mutation($n: String!, $s: [TokenScope!]!, $d: Int) {
  createAccessToken(name: $n, scopes: $s, expiresInDays: $d) { token accessToken { id name scopes createdAt lastUsedAt expiresAt } }
}`;
const MINE = `{ myAccessTokens { id name scopes lastUsedAt expiresAt } }`;
const REVOKE = `mutation($id: ID!) { revokeAccessToken(id: $id) }`;

describe(`access tokens: scoped credentials for scripts (${databaseKind})`, () => {
  let server: TestServer;
  let file: { id: string; md5: string };

  /** A token of `owner`'s with these scopes, and a client that sends it. */
  const token = async (owner: GraphQLClient, scopes: string[], name = `t ${tag()}`) => {
    const { createAccessToken } = await owner.data(CREATE, { n: name, s: scopes });
    return { ...createAccessToken, client: owner.withToken(createAccessToken.token) as GraphQLClient };
  };

  before(async () => {
    server = await startServer();
    file = await uploadFile(server.admin, randomFile(2000), `shared-${tag()}.bin`);
  });
  after(() => server?.close());

  it('is shown once with a recognisable prefix, and only its sha256 is stored', async () => {
    const created = await token(server.admin, ['READ', 'UPLOAD'], 'nightly build');
    assert.match(created.token, /^ucs_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(created.accessToken.scopes, ['READ', 'UPLOAD']);
    assert.equal(created.accessToken.expiresAt, null);
    const listed = (await server.admin.data(MINE)).myAccessTokens.find((t: any) => t.id === created.accessToken.id);
    assert.deepEqual(listed, { id: created.accessToken.id, name: 'nightly build', scopes: ['READ', 'UPLOAD'], lastUsedAt: null, expiresAt: null });
    assert.ok(!JSON.stringify(await server.admin.data(MINE)).includes(created.token), 'the list never shows a secret');

    const [row] = await server.sql(`select * from access_tokens where id = ?`, [created.accessToken.id]);
    const secret = created.token.slice('ucs_'.length);
    for (const [column, value] of Object.entries(row)) {
      assert.ok(!String(value).includes(secret), `column ${column} does not hold the secret`);
    }
    assert.equal(row.token_hash, createHash('sha256').update(created.token).digest('hex'));
  });

  it('READ: queries and downloads; not an upload, not a deletion, not a new token', async () => {
    const { client } = await token(server.admin, ['READ']);
    assert.ok((await client.data(`{ files(first: 5) { totalCount } }`)).files.totalCount >= 1);
    await verifyDownload(client, file.id, (await server.admin.download(`/files/${file.id}/content`)).body);
    expectCode(await client.startUpload({ filename: 'read.bin', totalSize: 10 }), 'FORBIDDEN');
    expectCode(await client.request(`mutation($id: ID!) { signUploadParts(uploadId: $id, partNumbers: [1]) { url } }`, { id: file.id }), 'FORBIDDEN');
    expectCode(await client.request(`mutation($id: ID!) { deleteFile(id: $id) }`, { id: file.id }), 'FORBIDDEN');
    expectCode(await client.request(CREATE, { n: 'escalate', s: ['FULL'] }), 'FORBIDDEN', 'a token cannot mint a wider one');
    const tus = await tusRequest(`${server.url}/tus/`, 'POST', { token: client.token, headers: { 'upload-length': '10', 'upload-metadata': `filename ${b64('r.bin')}` } });
    assert.equal(tus.status, 403);
    assert.equal(Number((await server.sql(`select count(*) as n from chunked_uploads where filename = 'read.bin' or filename = 'r.bin'`))[0].n), 0);
  });

  it("UPLOAD: uploads over GraphQL and tus, but cannot delete a file or create users (though its owner is an admin)", async () => {
    const { client } = await token(server.admin, ['UPLOAD']);
    const bytes = randomFile(600 * 1024);
    const uploaded = await uploadFile(client, bytes, `ci-${tag()}.bin`);
    const viaTus = await tusUpload(client, randomFile(1000), { metadata: { filename: `tus-${tag()}.bin` } });
    assert.equal(viaTus.error, undefined, String(viaTus.error));
    // signUploadParts is an upload operation too: past the scope check, the upload (not direct on disk storage) decides.
    const plain = await client.start(`sign-${tag()}.bin`, 10);
    const signed = await client.request(`mutation($id: ID!) { signUploadParts(uploadId: $id, partNumbers: [1]) { url } }`, { id: plain.id });
    assert.notEqual(signed.errors?.[0]?.extensions?.code, 'FORBIDDEN', JSON.stringify(signed.errors));
    const aborted = await client.start(`abort-${tag()}.bin`, 10);
    assert.equal((await client.data(`mutation($id: ID!) { abortUpload(uploadId: $id) { status } }`, { id: aborted.id })).abortUpload.status, 'ABORTED');

    expectCode(await client.request(`mutation($id: ID!) { deleteFile(id: $id) }`, { id: uploaded.id }), 'FORBIDDEN');
    expectCode(await client.request(`mutation($id: ID!) { updateFile(id: $id, description: "x") { id } }`, { id: uploaded.id }), 'FORBIDDEN');
    const username = `by_token_${tag()}`;
    expectCode(await client.request(`mutation($u: String!) { createUser(username: $u, password: "password-123") { id } }`, { u: username }), 'FORBIDDEN');
    expectCode(await client.request(`mutation { changePassword(oldPassword: "${server.env.ADMIN_PASSWORD}", newPassword: "whatever-123") }`), 'FORBIDDEN');
    assert.equal(Number((await server.sql(`select count(*) as n from users where username = ?`, [username]))[0].n), 0);
    // A mix: one field out of scope refuses the whole operation.
    expectCode(await client.request(`mutation($id: ID!) { startUpload(input: { filename: "mix.bin", totalSize: 1 }) { id } deleteFile(id: $id) }`, { id: uploaded.id }), 'FORBIDDEN');
    assert.ok((await server.admin.data(`query($id: ID!) { file(id: $id) { id } }`, { id: uploaded.id })).file);
  });

  it('FULL: all its user may do, and no more', async () => {
    const { client } = await token(server.admin, ['FULL']);
    const { createUser } = await client.data(`mutation($u: String!) { createUser(username: $u, password: "password-123") { id } }`, { u: `full_${tag()}` });
    const user = await server.admin.newUser();
    const userFull = (await token(user, ['FULL'])).client;
    expectCode(await userFull.request(`mutation($id: ID!) { deleteUser(id: $id) }`, { id: createUser.id }), 'FORBIDDEN', 'a plain user\'s FULL token is no admin');
    assert.equal((await client.data(`mutation($id: ID!) { deleteUser(id: $id) }`, { id: createUser.id })).deleteUser, true);
  });

  it('survives logoutEverywhere and a password change; ends with revokeAccessToken or its own logout', async () => {
    const password = `pw-${tag(8)}`;
    const username = `script_owner_${tag()}`;
    await server.admin.data(`mutation($u: String!, $p: String!) { createUser(username: $u, password: $p) { id } }`, { u: username, p: password });
    const owner = await server.client.login(username, password);
    const kept = await token(owner, ['READ']);
    const loggedOut = await token(owner, ['READ']);
    await owner.data(`mutation { logoutEverywhere }`);
    const again = await server.client.login(username, password);
    await again.data(`mutation($o: String!) { changePassword(oldPassword: $o, newPassword: "new-password-123") }`, { o: password });
    assert.equal((await kept.client.data(ME)).me.username, username);

    assert.equal((await loggedOut.client.data(`mutation { logout }`)).logout, true, 'logout with an access token revokes it');
    expectCode(await loggedOut.client.request(ME), 'UNAUTHENTICATED');

    const other = await server.admin.newUser();
    expectCode(await other.request(REVOKE, { id: kept.accessToken.id }), 'NOT_FOUND', "someone else's token");
    expectCode(await server.admin.request(REVOKE, { id: kept.accessToken.id }), 'NOT_FOUND', "an admin's too");
    assert.equal((await kept.client.data(ME)).me.username, username);
    const fresh = await server.client.login(username, 'new-password-123');
    assert.equal((await fresh.data(REVOKE, { id: kept.accessToken.id })).revokeAccessToken, true);
    expectCode(await kept.client.request(ME), 'UNAUTHENTICATED');
    assert.equal((await kept.client.download(`/files/${file.id}/content`)).status, 401);
    assert.deepEqual((await fresh.data(MINE)).myAccessTokens, []);
  });

  it('an expired or altered token is UNAUTHENTICATED; expiry and names are checked', async () => {
    const created = await token(server.admin, ['READ']);
    const { createAccessToken } = await server.admin.data(CREATE, { n: 'a week', s: ['READ'], d: 7 });
    const days = (new Date(createAccessToken.accessToken.expiresAt).getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 6.9 && days <= 7, String(days));
    assert.equal((await created.client.data(ME)).me.username, 'admin');
    await server.sql(`update access_tokens set expires_at = now() - interval '1 second' where id = ?`, [created.accessToken.id]);
    // Changed behind the server's back: its cache hears of it by notification, a moment later.
    await eventually(async () => expectCode(await created.client.request(ME), 'UNAUTHENTICATED'));
    const last = created.token.at(-1) === 'A' ? 'B' : 'A';
    expectCode(await server.client.withToken(`${created.token.slice(0, -1)}${last}`).request(ME), 'UNAUTHENTICATED');
    expectCode(await server.client.withToken('ucs_short').request(ME), 'UNAUTHENTICATED');
    expectCode(await server.admin.request(CREATE, { n: 'x', s: ['READ'], d: 0 }), 'BAD_USER_INPUT');
    expectCode(await server.admin.request(CREATE, { n: 'x', s: ['READ'], d: 3651 }), 'BAD_USER_INPUT');
    expectCode(await server.admin.request(CREATE, { n: '  ', s: ['READ'] }), 'BAD_USER_INPUT');
    expectCode(await server.admin.request(CREATE, { n: 'x', s: [] }), 'BAD_USER_INPUT');
  });

  it('keeps lastUsedAt without a write per request', async () => {
    const created = await token(server.admin, ['UPLOAD']);
    const lastUsed = async () => (await server.sql(`select last_used_at from access_tokens where id = ?`, [created.accessToken.id]))[0].last_used_at;
    assert.equal(await lastUsed(), null);
    const upload = await created.client.start(`used-${tag()}.bin`, 4 * 1024);
    let first: unknown = null;
    for (let i = 0; i < 50 && first === null; i += 1) {
      first = await lastUsed();
      if (first === null) await sleep(100);
    }
    assert.ok(first, 'the first use is recorded');
    await sendChunks(created.client, upload.id, randomFile(4 * 1024), 0, 4 * 1024, 1024);
    await sleep(300);
    assert.equal(new Date((await lastUsed()) as string).getTime(), new Date(first as string).getTime(), 'four chunks later, not written again');
    const listed = (await server.admin.data(MINE)).myAccessTokens.find((t: any) => t.id === created.accessToken.id);
    assert.equal(new Date(listed.lastUsedAt).getTime(), new Date(first as string).getTime());
  });
});
