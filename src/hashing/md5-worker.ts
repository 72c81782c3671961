// The worker side of Md5Pool (md5-pool.ts): one hash-wasm md5 instance whose state is swapped
// in and out per session, so any number of interleaved sessions cost no extra wasm memory.
import { createMD5, type IHasher } from 'hash-wasm';
import { parentPort } from 'node:worker_threads';
import type { ToWorker, FromWorker } from './md5-protocol';

const port = parentPort!;
const states = new Map<number, Uint8Array>();
let hasher: IHasher | undefined;
// Messages that arrive while the wasm module compiles wait here, in order.
let early: ToWorker[] | undefined = [];

function reply(message: FromWorker, transfer?: ArrayBuffer[]): void {
  port.postMessage(message, transfer);
}

function handle(message: ToWorker, md5: IHasher): void {
  if (message.type !== 'discard' && message.open) states.set(message.session, message.open);
  switch (message.type) {
    case 'data': {
      const state = states.get(message.session);
      // A session that failed earlier gets no more hashing, but the slab always goes back.
      if (state) {
        try {
          md5.load(state);
          md5.update(new Uint8Array(message.slab, 0, message.length));
          states.set(message.session, md5.save());
        } catch (err) {
          states.delete(message.session);
          reply({ type: 'failed', session: message.session, message: (err as Error).message });
        }
      }
      const saved = message.save ? states.get(message.session) : undefined;
      if (saved) {
        states.delete(message.session);
        reply({ type: 'saved', session: message.session, state: saved, slab: message.slab }, [message.slab]);
        return;
      }
      // A save for a session the worker does not know (or no longer: it failed above, and said so).
      if (message.save && !state) unknownSession(message.session);
      reply({ type: 'slab', session: message.session, slab: message.slab }, [message.slab]);
      return;
    }
    case 'save': {
      const state = states.get(message.session);
      states.delete(message.session);
      if (state) reply({ type: 'saved', session: message.session, state });
      else unknownSession(message.session);
      return;
    }
    case 'discard':
      states.delete(message.session);
      return;
  }
}

function unknownSession(session: number): void {
  reply({ type: 'failed', session, message: 'the md5 session is unknown to its worker' });
}

port.on('message', (message: ToWorker) => {
  if (hasher) handle(message, hasher);
  else early!.push(message);
});

createMD5().then((md5) => {
  for (const message of early!) handle(message, md5);
  early = undefined;
  hasher = md5;
});
