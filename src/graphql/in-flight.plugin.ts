import type { ApolloServerPlugin } from '@apollo/server';

/**
 * Counts GraphQL operations still running, so shutdown can wait for them. The HTTP server's
 * drain only waits for open connections, but a chunk whose client has gone is still being
 * cleaned up (its lease released) after its connection closed.
 */
export class InFlightOperations {
  private count = 0;
  private idle: (() => void)[] = [];

  readonly plugin: ApolloServerPlugin = {
    requestDidStart: async () => {
      this.count++;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        if (--this.count === 0) this.idle.splice(0).forEach((resolve) => resolve());
      };
      return { willSendResponse: async () => finish() };
    },
  };

  /** Resolves when no operation runs, or after `timeoutMs` at the latest. */
  async settled(timeoutMs: number): Promise<void> {
    if (this.count === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
