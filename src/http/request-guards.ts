import type { RequestHandler } from 'express';
import type http from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config';

/**
 * For every http.Server of the app: header deadlines are enforced on this interval (Node's
 * default, 30 s, would let a slow client keep its connection for HEADERS_TIMEOUT + 30 s).
 */
export const HTTP_SERVER_OPTIONS: http.ServerOptions = { connectionsCheckingInterval: 1000 };

/** The window over which an upload stream's rate is judged. */
const RATE_WINDOW_MS = 10_000;

/**
 * What a connection may hold before it has sent anything useful: its headers within
 * HEADERS_TIMEOUT, and at most MAX_CONNECTIONS_PER_ADDRESS connections from one address.
 * Node's own requestTimeout stays off: an upload stream may rightly take hours.
 */
export function guardConnections(server: http.Server, limits: Config['limits'], log: Logger): void {
  server.headersTimeout = limits.headersTimeoutSeconds * 1000;
  server.requestTimeout = 0;
  if (limits.maxConnectionsPerAddress === 0) return;
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const count = (open.get(address) ?? 0) + 1;
    if (count > limits.maxConnectionsPerAddress) {
      log.warn({ address, limit: limits.maxConnectionsPerAddress }, 'refused a connection: too many open from one address');
      socket.destroy();
      return;
    }
    open.set(address, count);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left === 0) open.delete(address);
      else open.set(address, left);
    });
  });
}

/**
 * Deadlines for request bodies. A body that is not an upload stream (JSON, a login) must arrive
 * whole within REQUEST_TIMEOUT. An upload stream (multipart chunk, tus PATCH or POST with bytes)
 * must average MIN_BODY_RATE over every 10 s — except while the server itself is not reading
 * (its buffer is full: storage is slow, or a lease is being fenced), which is not the client's
 * fault. A body that fails either is cut off, and with it the connection and any lease it held.
 */
export function bodyDeadlines(limits: Config['limits'], log: Logger): RequestHandler {
  return (req, _res, next) => {
    if (req.complete) return next();
    const stream = isUploadStream(req);
    const startedAt = Date.now();
    let seen = req.socket.bytesRead;
    const check = () => {
      if (req.complete || req.destroyed) return stop();
      if (!stream) {
        if (Date.now() - startedAt >= limits.requestTimeoutSeconds * 1000) cut(`its body did not arrive within REQUEST_TIMEOUT (${limits.requestTimeoutSeconds} s)`);
        return;
      }
      const received = req.socket.bytesRead - seen;
      seen = req.socket.bytesRead;
      const serverNotReading = req.readableLength >= req.readableHighWaterMark;
      if (!serverNotReading && received < (limits.minBodyRate * RATE_WINDOW_MS) / 1000) {
        cut(`its body arrived slower than MIN_BODY_RATE (${limits.minBodyRate} bytes/s)`);
      }
    };
    const everyMs = stream ? RATE_WINDOW_MS : Math.min(RATE_WINDOW_MS, limits.requestTimeoutSeconds * 1000);
    const timer = stream && limits.minBodyRate === 0 ? undefined : setInterval(check, everyMs).unref();
    const stop = () => clearInterval(timer);
    const cut = (why: string) => {
      stop();
      log.info({ url: req.originalUrl, address: req.ip, why }, 'cut off a request');
      req.socket.destroy();
    };
    req.once('end', stop).once('close', stop);
    next();
  };
}

function isUploadStream(req: http.IncomingMessage & { is?(type: string): string | false | null }): boolean {
  const type = (req.headers['content-type'] ?? '').toLowerCase();
  return type.startsWith('multipart/form-data') || type.startsWith('application/offset+octet-stream');
}
