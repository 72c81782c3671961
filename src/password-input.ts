import readline from 'node:readline';
import { Writable } from 'node:stream';
import { StartupError } from './startup';

/**
 * A new password for a CLI command: `--password` when given, else typed twice at a hidden prompt
 * in a terminal, else the first line of standard input (`echo "$PW" | upload-server ...`), which
 * keeps it out of the process list and the shell history.
 */
export async function readNewPassword(given: string | undefined, forWhom: string): Promise<string> {
  if (given !== undefined) return given;
  if (process.stdin.isTTY) {
    const [first, again] = await promptHidden([`New password for ${forWhom}: `, 'Again: ']);
    if (first !== again) throw new StartupError('The two passwords differ; nothing changed.');
    return first;
  }
  const line = await firstLine(process.stdin);
  if (line === undefined) {
    throw new StartupError('No password: give --password, pipe it on standard input, or run the command in a terminal to be asked.');
  }
  return line;
}

/**
 * Asks each question and reads one line for it, with echo off: readline in terminal mode writes
 * its echo to a sink. One interface for all, so lines typed ahead are not lost between them.
 */
function promptHidden(questions: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
    const rl = readline.createInterface({ input: process.stdin, output: sink, terminal: true });
    const answers: string[] = [];
    process.stderr.write(questions[0]);
    rl.on('line', (line) => {
      answers.push(line);
      process.stderr.write('\n');
      if (answers.length < questions.length) process.stderr.write(questions[answers.length]);
      else rl.close();
    });
    rl.once('SIGINT', () => rl.close());
    rl.once('close', () => {
      if (answers.length === questions.length) return resolve(answers);
      process.stderr.write('\n');
      reject(new StartupError('Cancelled; nothing changed.'));
    });
  });
}

function firstLine(input: NodeJS.ReadStream): Promise<string | undefined> {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input, crlfDelay: Infinity });
    let line: string | undefined;
    rl.once('line', (text) => {
      line = text;
      rl.close();
    });
    rl.once('close', () => {
      // Nothing else is read from it: let the process end even if the writer keeps it open.
      input.destroy();
      resolve(line === '' ? undefined : line);
    });
  });
}
