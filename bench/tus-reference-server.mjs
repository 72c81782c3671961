// The bench's tus reference: @tus/server with its own @tus/file-store FileStore, as its README
// starts it, at /files/ (uploads stored under DIR as <id> plus <id>.json). Neither hashes nor
// fsyncs: its guarantees are raw-http's, its cost is what a popular tus server pays for the
// protocol. Prints {"port": <n>} once listening.
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';

const tus = new Server({
  path: '/files',
  datastore: new FileStore({ directory: process.env.DIR ?? process.cwd() }),
  // The bench client reads the id off a path, whatever the host.
  relativeLocation: true,
});
const server = tus.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
server.requestTimeout = 0;
process.once('SIGTERM', () => server.close(() => process.exit(0)));
