import { Errors } from '../errors';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MD5 = /^[0-9a-f]{32}$/i;
export const MAX_FILENAME_BYTES = 255;
// C0 controls, DEL and C1 controls.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/g;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** An md5 as 32 hex digits in either case, returned in lowercase. */
export function parseMd5(value: string, field: string): string {
  if (!MD5.test(value)) throw Errors.badInput(`${field} must be 32 hexadecimal digits (the md5 of the bytes).`);
  return value.toLowerCase();
}

/** A byte count or position: a whole number, not negative. */
export function requireByteCount(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw Errors.badInput(`${field} must be a whole number of bytes, 0 or more.`);
  return value;
}

/**
 * The name a file is stored under (API.md "Filenames"): path components stripped, control
 * characters removed, Unicode in NFC so visually equal names compare equal.
 */
export function cleanFilename(raw: string): string {
  const base = raw.slice(Math.max(raw.lastIndexOf('/'), raw.lastIndexOf('\\')) + 1);
  const name = base.replace(CONTROL_CHARACTERS, '').normalize('NFC');
  if (name === '' || name === '.' || name === '..') {
    throw Errors.badInput('filename must name a file: it is empty once path and control characters are removed.');
  }
  if (Buffer.byteLength(name, 'utf8') > MAX_FILENAME_BYTES) {
    throw Errors.badInput(`filename must be at most ${MAX_FILENAME_BYTES} bytes in UTF-8.`);
  }
  return name;
}

/** Text for a LIKE pattern with its wildcards escaped, so it matches only itself. */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

export const MAX_DESCRIPTION_LENGTH = 10_000;

export function cleanDescription(description: string): string {
  refuseNul(description, 'description');
  if (description.length > MAX_DESCRIPTION_LENGTH) {
    throw Errors.badInput(`description must be at most ${MAX_DESCRIPTION_LENGTH} characters.`);
  }
  return description;
}

/** PostgreSQL text cannot hold NUL: refuse it as bad input rather than fail in the database. */
export function refuseNul(text: string, field: string): string {
  if (text.includes('\u0000')) throw Errors.badInput(`${field} must not contain NUL characters.`);
  return text;
}
