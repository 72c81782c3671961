import type { User } from '../entities';
import { Errors } from '../errors';

/** Bodies each user is streaming into this process right now, against MAX_STREAMS_PER_USER. */
export class StreamSlots {
  private readonly streamsByUser = new Map<string, number>();

  constructor(private readonly limit: number) {}

  /** One of the owner's streams, given back when disposed; TOO_MANY_STREAMS past the limit. */
  take(owner: User): Disposable {
    const streaming = this.streamsByUser.get(owner.id) ?? 0;
    if (this.limit > 0 && streaming >= this.limit) throw Errors.tooManyStreams(this.limit);
    this.streamsByUser.set(owner.id, streaming + 1);
    return {
      [Symbol.dispose]: () => {
        const left = (this.streamsByUser.get(owner.id) ?? 1) - 1;
        if (left === 0) this.streamsByUser.delete(owner.id);
        else this.streamsByUser.set(owner.id, left);
      },
    };
  }
}
