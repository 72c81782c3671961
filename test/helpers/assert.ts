import assert from 'node:assert/strict';
import type { GraphQLError, GraphQLResult } from './client';
import { healthStatus } from './client';

/** "OK" for an answer without errors, else its error codes joined by commas. */
export function outcome(result: GraphQLResult): string {
  if (!result.errors?.length) return 'OK';
  return result.errors.map((e) => e.extensions?.code ?? `no code: ${e.message}`).join(',');
}

/** Asserts exactly one GraphQL error, with the API.md code, and returns it for further checks. */
export function expectCode(result: GraphQLResult, code: string, what = ''): GraphQLError {
  const codes = (result.errors ?? []).map((e) => e.extensions?.code);
  assert.deepEqual(codes, [code], `${what ? `${what}: ` : ''}expected ${code}, got ${JSON.stringify(result.errors ?? result.data)}`);
  return result.errors![0];
}

/** The data of an answer that must have no errors. */
export function expectOk(result: GraphQLResult): any {
  assert.equal(result.errors, undefined, `unexpected errors: ${JSON.stringify(result.errors)}`);
  return result.data;
}

/** The server still answers GET /healthz with 200. */
export async function expectHealthy(url: string): Promise<void> {
  assert.equal(await healthStatus(url), 200, `GET ${url}/healthz answers 200`);
}

/** A GraphQL error a client can be shown: a code, a message, and nothing of the server's insides. */
export function assertCleanError(error: GraphQLError | undefined, what: string): void {
  assert.ok(error, `${what}: an error`);
  assert.equal(typeof error.extensions?.code, 'string', `${what}: a code in ${JSON.stringify(error)}`);
  assert.notEqual(error.message, '', `${what}: a message`);
  assert.equal(error.extensions?.stacktrace, undefined, `${what}: no stack trace in ${JSON.stringify(error)}`);
  const leaks = [
    /\b(select|update|insert into|delete from)\b[\s\S]*\b(from|set|where|values|returning)\b/i,
    /chunked_uploads|lease_token|lock_token|md5_state|"offset"/i,
    /terminating connection|ECONNREFUSED|ECONNRESET|ENOSPC|EROFS|EACCES|57P01|connection terminated/i,
    /\n\s+at /,
    /\/tmp\/|\/work\/|node_modules|DATA_DIR/,
  ];
  for (const leak of leaks) assert.doesNotMatch(error.message, leak, `${what}: the message shows server internals: ${error.message}`);
}

/** Runs `check` for every row (its first item names it) and reports every failing row at once, not just the first. */
export async function assertEach<T extends [string, ...unknown[]]>(table: T[], check: (...row: T) => Promise<void>): Promise<void> {
  const failures: string[] = [];
  for (const row of table) {
    try {
      await check(...row);
    } catch (err) {
      failures.push(`${row[0]}: ${(err as Error).message.replace(/\s*\n\s*/g, ' ').slice(0, 300)}`);
    }
  }
  assert.deepEqual(failures, [], `\n${failures.join('\n')}`);
}
