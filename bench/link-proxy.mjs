// A slow network link for the bench (`npm run bench -- --rtt 50 --rate 1000`): a TCP proxy in
// front of one server that delays each direction by half the round-trip time and caps each
// direction's bandwidth, shared by every connection (one link, as a real uplink is). The kernel
// here has no netem. What it does not model: loss, and TCP's own congestion window (the proxy
// ends TCP on both sides); the bytes a direction may hold in flight are bounded by about twice
// the bandwidth-delay product, as a real window would bound them.
//
// Environment: PORT, HOST (where to listen), TARGET_PORT, TARGET_HOST, RTT_MS, RATE_MBIT.
import net from 'node:net';

const listenPort = Number(process.env.PORT);
const host = process.env.HOST ?? '127.0.0.1';
const targetPort = Number(process.env.TARGET_PORT);
const targetHost = process.env.TARGET_HOST ?? '127.0.0.1';
const oneWayMs = Number(process.env.RTT_MS ?? 50) / 2;
const bytesPerMs = (Number(process.env.RATE_MBIT ?? 1000) * 1e6) / 8 / 1000;
for (const [name, value] of Object.entries({ PORT: listenPort, TARGET_PORT: targetPort, RTT_MS: oneWayMs, RATE_MBIT: bytesPerMs })) {
  if (!Number.isFinite(value) || value < 0) throw new Error(`link-proxy: bad ${name}`);
}
/** The most a direction holds before it stops reading its sender: twice the bandwidth-delay product, at least 1 MiB. */
const windowBytes = Math.max(1 << 20, Math.ceil(2 * bytesPerMs * 2 * oneWayMs));

/** One direction of the link: when it is next free to put a byte on the wire. */
class Wire {
  freeAt = 0;
  /** When a piece of `length` bytes handed over now arrives at the other end. */
  schedule(length) {
    const start = Math.max(performance.now(), this.freeAt);
    this.freeAt = start + length / bytesPerMs;
    return this.freeAt + oneWayMs;
  }
}

const upstream = new Wire();
const downstream = new Wire();

/** Carries `from`'s bytes to `to` over `wire`, in order, each piece delivered at its arrival time. */
function carry(from, to, wire) {
  const queue = []; // { at, piece } with piece === null for the end of the stream
  let held = 0;
  let timer;
  const deliver = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0].at <= now) {
      const { piece } = queue.shift();
      if (piece === null) return void to.end();
      held -= piece.length;
      to.write(piece);
    }
    if (held < windowBytes / 2 && from.isPaused()) from.resume();
    if (queue.length > 0) timer = setTimeout(deliver, Math.max(0, queue[0].at - now));
  };
  const enqueue = (piece, at) => {
    queue.push({ at, piece });
    if (!timer) timer = setTimeout(deliver, Math.max(0, queue[0].at - performance.now()));
  };
  from.on('data', (piece) => {
    held += piece.length;
    enqueue(piece, wire.schedule(piece.length));
    if (held >= windowBytes) from.pause();
  });
  from.on('end', () => enqueue(null, Math.max(wire.freeAt, performance.now()) + oneWayMs));
  return () => clearTimeout(timer);
}

const server = net.createServer((client) => {
  const target = net.connect(targetPort, targetHost);
  client.setNoDelay(true);
  target.setNoDelay(true);
  const stops = [carry(client, target, upstream), carry(target, client, downstream)];
  const close = () => {
    for (const stop of stops) stop();
    client.destroy();
    target.destroy();
  };
  client.on('error', close);
  target.on('error', close);
  client.on('close', () => target.writableEnded || target.destroy());
  target.on('close', () => client.writableEnded || client.destroy());
});
server.listen(listenPort, host, () => process.stdout.write(`link-proxy ${host}:${listenPort} → ${targetHost}:${targetPort}, RTT ${2 * oneWayMs} ms, ${process.env.RATE_MBIT ?? 1000} Mbit/s\n`));
process.on('SIGTERM', () => process.exit(0));
