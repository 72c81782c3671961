// Child processes for the bench: the real server, the baseline, and what /proc says about them.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const CLOCK_TICKS = (() => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const ticks = Number(out.stdout?.trim());
  return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
})();

export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** CPU seconds (user + system) the process has used so far, from /proc/<pid>/stat. */
export async function cpuSeconds(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime (fields 14, 15)
}

/** VmHWM (peak resident set) and VmRSS in bytes, from /proc/<pid>/status. */
export async function memory(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { peakRss: kib('VmHWM'), rss: kib('VmRSS') };
}

/**
 * Spawns `node <args>` with `env`, its output going to `logFile`. The returned handle can be
 * stopped with SIGTERM (then SIGKILL after a grace period) and tells when the process died early.
 */
export function startProcess(name, args, env, logFile) {
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  // If the bench dies without its clean-up (an uncaught error, a closed pipe on `| head`), its
  // servers must not live on: 'exit' handlers run even then, and only synchronous work counts.
  const killOnExit = () => child.kill('SIGTERM');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  return {
    name,
    child,
    pid: child.pid,
    logFile,
    exited,
    get alive() {
      return child.exitCode === null && child.signalCode === null;
    },
    async stop(graceMs = 15000) {
      if (this.alive) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => this.alive && child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      await new Promise((resolve) => log.end(resolve));
      return exited;
    },
  };
}

/** Polls `url` until its status passes `ok` (200 by default), or fails if the process exits or the time runs out. */
export async function waitHealthy(proc, url, { timeoutMs = 60000, ok = (status) => status === 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!proc.alive) throw new Error(`${proc.name} exited during start-up; see ${proc.logFile}`);
    const status = await new Promise((resolve) => {
      const req = http.get(url, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', () => resolve(0));
      req.setTimeout(2000, () => req.destroy());
    });
    if (ok(status)) return;
    if (Date.now() > deadline) throw new Error(`${proc.name} did not become healthy at ${url} within ${timeoutMs / 1000} s; see ${proc.logFile}`);
    await sleep(100);
  }
}

/** Machine-wide CPU seconds, busy and total, from /proc/stat (to see how much other work ran meanwhile). */
export async function machineCpu() {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0];
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busySeconds: busy / CLOCK_TICKS, totalSeconds: (busy + idle + iowait) / CLOCK_TICKS };
}
