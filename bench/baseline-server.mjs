// The bench's yardsticks: the least an upload server can do. POST /upload?id=<name>&offset=<n>
// writes the raw request body into DIR/<name> at that offset and answers {"offset": <offset + bytes>}.
// No auth, no database, no parsing. Prints {"port": <n>} once listening.
//
// Started twice by the bench: as raw-http (nothing more), and as raw-safe with MD5=true and
// FSYNC=true (when the server fsyncs, CHUNK_FSYNC): the least a server with our guarantees
// must do. MD5=true hashes the body as it streams (node:crypto, OpenSSL), the whole file's md5
// carried from chunk to chunk in memory, so chunks must come in order; the answer adds the md5
// of the bytes so far. FSYNC=true fsyncs the file before answering.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const dir = process.env.DIR ?? process.cwd();
const fsync = process.env.FSYNC === 'true';
const md5 = process.env.MD5 === 'true';
/** id -> { hash, offset }: the md5 of the bytes up to offset (MD5=true). */
const hashes = new Map();

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://baseline');
  const id = url.searchParams.get('id') ?? '';
  const offset = Number(url.searchParams.get('offset'));
  if (req.method !== 'POST' || url.pathname !== '/upload' || !/^[\w-]{1,64}$/.test(id) || !Number.isSafeInteger(offset) || offset < 0) {
    req.resume();
    return res.writeHead(400).end('bad request\n');
  }
  let state;
  if (md5) {
    if (offset === 0) hashes.set(id, { hash: createHash('md5'), offset: 0 });
    state = hashes.get(id);
    if (state?.offset !== offset) {
      req.resume();
      return res.writeHead(409).end(`expected offset ${state?.offset ?? 0}\n`);
    }
  }
  try {
    // flush: fsync before the file is closed, and the pipeline ends only once it is closed.
    const out = createWriteStream(path.join(dir, id), { flags: offset === 0 ? 'w' : 'r+', start: offset, flush: fsync });
    if (state) {
      // A fresh hash for this body, adopted only once the body is written: a cut body leaves the state as it was.
      const hash = state.hash.copy();
      const hashing = new Transform({
        transform(buf, _, done) {
          hash.update(buf);
          done(null, buf);
        },
      });
      await pipeline(req, hashing, out);
      hashes.set(id, { hash, offset: offset + out.bytesWritten });
      return res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ offset: offset + out.bytesWritten, md5: hash.copy().digest('hex') }));
    }
    await pipeline(req, out);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ offset: offset + out.bytesWritten }));
  } catch (err) {
    if (!res.headersSent) res.writeHead(500).end(`${err}\n`);
  }
});
server.requestTimeout = 0;
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
