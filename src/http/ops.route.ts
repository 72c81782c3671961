import { createHash, timingSafeEqual } from 'node:crypto';
import { Router, type Request } from 'express';
import type { Logger } from 'pino';
import type { Database } from '../db/orm';
import { sendAppError } from '../error-edge';
import { Errors } from '../errors';
import type { Metrics } from '../metrics';
import { StorageUnavailableError, type FileStore } from '../storage/file-store';
import { TimeoutError, withTimeout } from '../time-limit';

/** Each readiness check gets this long: a probe that hangs says "not ready" as well as one that fails. */
const READY_TIMEOUT_MS = 2_000;

/**
 * GET /readyz: the database answers and the store takes bytes now (load balancers, Kubernetes'
 * readinessProbe). GET /metrics: Prometheus text, behind METRICS_TOKEN when it is set.
 */
export function operationsRouter(deps: { database: Database; store: FileStore; metrics: Metrics; metricsToken?: string; log: Logger }): Router {
  const { database, store, metrics, log } = deps;
  const router = Router();
  const expected = deps.metricsToken === undefined ? undefined : digest(deps.metricsToken);
  let wasReady = true;

  router.get('/readyz', async (_req, res) => {
    const [db, storage] = await Promise.all([
      check('database', () => database.orm.em.getConnection().execute('select 1')),
      check('storage', () => store.probe()),
    ]);
    const failures = [db, storage].filter((c) => c.problem !== undefined);
    res.setHeader('Cache-Control', 'no-store');
    if (failures.length === 0) {
      if (!wasReady) log.info('ready again: the database answers and storage takes bytes');
      wasReady = true;
      res.json({ status: 'ready', checks: { database: 'ok', storage: 'ok' } });
      return;
    }
    // Probes come every few seconds: log when readiness is lost, not at every probe.
    if (wasReady) log.warn({ failures: failures.map((f) => ({ check: f.name, err: f.err })) }, 'not ready');
    wasReady = false;
    res.status(503).json({
      status: 'unavailable',
      reason: failures.map((f) => `${f.name}: ${f.problem}`).join('; '),
      checks: { database: db.problem ?? 'ok', storage: storage.problem ?? 'ok' },
    });
  });

  router.get('/metrics', async (req, res) => {
    if (expected && !bearerMatches(req, expected)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="metrics"');
      sendAppError(res, Errors.unauthenticated('GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>".'));
      return;
    }
    res.setHeader('Cache-Control', 'no-store');
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  return router;
}

interface CheckResult {
  name: string;
  /** What a caller is told when the check failed: short, no addresses, paths or SQL. */
  problem?: string;
  err?: unknown;
}

async function check(name: string, probe: () => Promise<unknown>): Promise<CheckResult> {
  try {
    await withTimeout(probe(), READY_TIMEOUT_MS, name);
    return { name };
  } catch (err) {
    if (err instanceof TimeoutError) return { name, problem: `no answer within ${READY_TIMEOUT_MS} ms`, err };
    if (err instanceof StorageUnavailableError) return { name, problem: err.reason, err };
    return { name, problem: 'unavailable', err };
  }
}

/** Compared as fixed-length digests, in constant time: the token's length leaks nothing either. */
function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function bearerMatches(req: Request, expected: Buffer): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return match !== null && timingSafeEqual(digest(match[1]), expected);
}
