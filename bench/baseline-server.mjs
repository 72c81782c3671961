// The bench's yardstick: the least an upload server can do. POST /upload?id=<name>&offset=<n>
// writes the raw request body into DIR/<name> at that offset (fsync'd before answering when FSYNC=true,
// as the real server does with CHUNK_FSYNC) and answers {"offset": <offset + bytes>}.
// No auth, no database, no parsing, no hashing. Prints {"port": <n>} once listening.
import { createWriteStream } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

const dir = process.env.DIR ?? process.cwd();
const fsync = process.env.FSYNC === 'true';

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://baseline');
  const id = url.searchParams.get('id') ?? '';
  const offset = Number(url.searchParams.get('offset'));
  if (req.method !== 'POST' || url.pathname !== '/upload' || !/^[\w-]{1,64}$/.test(id) || !Number.isSafeInteger(offset) || offset < 0) {
    req.resume();
    return res.writeHead(400).end('bad request\n');
  }
  try {
    // flush: fsync before the file is closed, and the pipeline ends only once it is closed.
    const out = createWriteStream(path.join(dir, id), { flags: offset === 0 ? 'w' : 'r+', start: offset, flush: fsync });
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
