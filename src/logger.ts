import pino, { type Logger } from 'pino';

/** `json`: one JSON object per line (log collectors); `pretty`: readable lines (pino-pretty). */
export type LogFormat = 'json' | 'pretty';

/**
 * LOG_FORMAT when set; otherwise readable lines only for a person at a terminal in development,
 * and JSON whenever stdout is piped or collected (Docker, systemd, a log shipper) or in production.
 */
export function chooseLogFormat(options: { format?: LogFormat; production: boolean; isTTY: boolean }): LogFormat {
  return options.format ?? (!options.production && options.isTTY ? 'pretty' : 'json');
}

/** `choice`: LOG_FORMAT and whether NODE_ENV is production (default: read from the environment). */
export function createLogger(level: string, choice: { format?: LogFormat; production?: boolean } = {}): Logger {
  const format = chooseLogFormat({
    format: choice.format,
    production: choice.production ?? process.env.NODE_ENV === 'production',
    isTTY: Boolean(process.stdout.isTTY),
  });
  const options = { level, base: undefined, redact: ['req.headers.authorization', '*.password', '*.token'] };
  if (format === 'json') return pino(options);
  // Synchronous on the main thread: a development server's few lines need no worker thread.
  // pino-pretty is a development dependency: an install without it keeps JSON.
  let pretty: typeof import('pino-pretty');
  try {
    pretty = require('pino-pretty') as typeof import('pino-pretty');
  } catch {
    const log = pino(options);
    log.warn('readable log lines need pino-pretty, a development dependency that is not installed: logging JSON');
    return log;
  }
  return pino(options, pretty({ sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
}
