import { spawn } from 'node:child_process';
import path from 'node:path';

/** The compiled `upload-server` and `upload-file` commands. */
export const SERVER_CLI = path.resolve(__dirname, '../../src/cli.js');
export const UPLOAD_CLI = path.resolve(__dirname, '../../client/cli/upload-cli.js');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a compiled command as a user would, with exactly `env` (plus PATH); `input` is piped to
 * its standard input (else it reads /dev/null), `cwd` is where it runs.
 */
export function runCli(
  args: string[],
  env: Record<string, string>,
  options: { cwd?: string; input?: string; script?: string; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [options.script ?? SERVER_CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`cli ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export const show = (r: Run): string => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
