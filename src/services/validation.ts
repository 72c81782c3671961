import { Errors } from '../errors';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MD5 = /^[0-9a-f]{32}$/i;
export const MAX_FILENAME_BYTES = 255;
// C0 controls, DEL and C1 controls; and the invisible format characters that reorder or hide
// text (bidi embeddings, overrides and isolates; zero-width space, joiners, word joiner, BOM),
// with which "invoice\u202Efdp.exe" is shown as "invoiceexe.pdf".
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u200b-\u200d\u202a-\u202e\u2060\u2066-\u2069\ufeff]/g;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** An md5 as 32 hex digits in either case, returned in lowercase. */
export function parseMd5(value: string, field: string): string {
  if (!MD5.test(value)) throw Errors.badInput(`${field} must be 32 hexadecimal digits (the md5 of the bytes).`);
  return value.toLowerCase();
}

/**
 * A date the database can compare with. JavaScript's dates reach year ±275760 and graphql's
 * DateTime takes year 0000, but PostgreSQL refuses year 0 and anything beyond its range: such a
 * date is the client's mistake, not a failure of the server.
 */
export function requireInstant(date: Date, field: string): Date {
  const year = date.getUTCFullYear();
  if (Number.isNaN(date.getTime()) || year < 1 || year > 9999) throw Errors.badInput(`${field} must be a date in the years 1 to 9999.`);
  return date;
}

/** A byte count or position: a whole number, not negative. */
export function requireByteCount(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw Errors.badInput(`${field} must be a whole number of bytes, 0 or more.`);
  return value;
}

/**
 * The name a file is stored under (API.md "Filenames"): path components stripped, control
 * and invisible format characters removed, Unicode in NFC so visually equal names compare equal.
 */
export function cleanFilename(raw: string): string {
  const base = raw.slice(Math.max(raw.lastIndexOf('/'), raw.lastIndexOf('\\')) + 1);
  const name = removeInvisible(base).normalize('NFC');
  if (name.trim() === '' || name === '.' || name === '..') {
    throw Errors.badInput('filename must name a file: it is empty, or only spaces, once path and control characters are removed.');
  }
  if (Buffer.byteLength(name, 'utf8') > MAX_FILENAME_BYTES) {
    throw Errors.badInput(`filename must be at most ${MAX_FILENAME_BYTES} bytes in UTF-8.`);
  }
  return name;
}

export const MAX_MIME_TYPE_LENGTH = 255;
// RFC 6838 restricted names for type and subtype; RFC 9110 parameters (token = token or quoted-string).
const RESTRICTED_NAME = '[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}';
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const QUOTED_STRING = '"(?:[\\t\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\[\\t\\x20-\\x7e])*"';
const MEDIA_TYPE = new RegExp(`^${RESTRICTED_NAME}/${RESTRICTED_NAME}(?:[ \\t]*;[ \\t]*${TOKEN}=(?:${TOKEN}|${QUOTED_STRING}))*$`);

/** True for a media type that can go into a Content-Type header as it is. */
export function isMediaType(value: string): boolean {
  return value.length <= MAX_MIME_TYPE_LENGTH && MEDIA_TYPE.test(value);
}

/**
 * A declared mime type, trimmed; undefined when none was given (the caller guesses from the
 * name). It is sent back as the download's Content-Type, so anything that is not a media type
 * (a CR or LF would split the header) is refused.
 */
export function cleanMimeType(value: string | null | undefined): string | undefined {
  const trimmed = value?.trim();
  if (!trimmed) return undefined;
  if (!isMediaType(trimmed)) {
    throw Errors.badInput(`mimeType must be a media type such as "text/plain; charset=utf-8" (type/subtype and parameters, at most ${MAX_MIME_TYPE_LENGTH} characters).`);
  }
  return trimmed;
}

export const MAX_SEARCH_LENGTH = 200;

/** A files(search:) term: bounded, no NUL, in NFC like the stored names. */
export function cleanSearch(search: string): string {
  refuseNul(search, 'search');
  if (search.length > MAX_SEARCH_LENGTH) throw Errors.badInput(`search must be at most ${MAX_SEARCH_LENGTH} characters.`);
  // Names are stored in NFC; a search typed in NFD must still find them.
  return search.normalize('NFC');
}

/** `text` without control characters and the format characters that reorder or hide text. */
export function removeInvisible(text: string): string {
  return text.replace(CONTROL_CHARACTERS, '');
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
