import assert from 'node:assert/strict';
import net from 'node:net';
import type { UploadClient, UploadInput, UploadOptions, UploadProgress } from '../../client/src/node';

/**
 * A TCP proxy in front of `target` that breaks every connection through it once, the first
 * time more than `cutAfter` bytes in all have gone up from clients: a connection lost mid-chunk.
 */
export async function cuttingProxy(target: string, cutAfter: number): Promise<{ url: string; cut: () => boolean; close: () => Promise<void> }> {
  const { hostname, port } = new URL(target);
  let upstreamBytes = 0;
  let cut = false;
  const sockets = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (data: Buffer) => {
      upstreamBytes += data.length;
      if (!cut && upstreamBytes > cutAfter) {
        cut = true;
        for (const socket of sockets) socket.destroy();
        return;
      }
      if (!upstream.write(data)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    });
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`,
    cut: () => cut,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => proxy.close(() => resolve()));
    },
  };
}

/** Every report's bytesTransferred is at least the one before. */
export function assertMonotone(events: UploadProgress[]): void {
  for (let i = 1; i < events.length; i++) {
    assert.ok(
      events[i].bytesTransferred >= events[i - 1].bytesTransferred,
      `progress went back from ${events[i - 1].bytesTransferred} to ${events[i].bytesTransferred} (report ${i}: ${JSON.stringify(events[i])})`,
    );
  }
}

/** Uploads with `c` and aborts once `abortAt` bytes are on the server; returns the last progress seen. */
export async function uploadUntilAborted(c: UploadClient, input: UploadInput, options: UploadOptions, abortAt: number): Promise<UploadProgress> {
  const controller = new AbortController();
  let last: UploadProgress | undefined;
  await assert.rejects(
    c.upload(input, {
      ...options,
      signal: controller.signal,
      onProgress: (p) => {
        last = p;
        if (p.bytesUploaded >= abortAt) controller.abort();
      },
    }),
    { name: 'AbortError' },
  );
  assert.ok(last, 'progress was reported before the abort');
  return last;
}

/** A File's bytes through its downloadUrl. */
export async function downloaded(c: UploadClient, file: { downloadUrl: string }): Promise<Buffer> {
  const res = await fetch(c.downloadUrl(file));
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}
