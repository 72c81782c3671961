import { Errors } from '../errors';

/** The largest Upload-Metadata header kept (Uppy sends a handful of short keys). */
const MAX_METADATA_LENGTH = 8192;

/**
 * tus Upload-Metadata: comma-separated `key base64value` pairs (the value may be absent).
 * Values decode as UTF-8 text; anything malformed is the client's input error.
 */
export function parseUploadMetadata(header: string | undefined): Map<string, string> {
  const pairs = new Map<string, string>();
  if (header === undefined || header.trim() === '') return pairs;
  if (header.length > MAX_METADATA_LENGTH) throw Errors.badInput(`Upload-Metadata is longer than ${MAX_METADATA_LENGTH} characters.`);
  for (const pair of header.split(',')) {
    const [key, value, ...rest] = pair.trim().split(' ');
    if (!key || rest.length > 0 || !/^[\x21-\x7e]+$/.test(key)) throw Errors.badInput(`Upload-Metadata has a malformed pair: "${pair.trim()}".`);
    if (pairs.has(key)) throw Errors.badInput(`Upload-Metadata names "${key}" twice.`);
    if (value !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw Errors.badInput(`Upload-Metadata's "${key}" is not base64.`);
    pairs.set(key, Buffer.from(value ?? '', 'base64').toString('utf8'));
  }
  return pairs;
}
