import { constants } from 'node:os';

/**
 * SIGINT and SIGTERM while a command runs: the first aborts `signal` so the
 * command can wind down (a remote build cancels itself on the server); a
 * second one exits at once. Disposing stops listening.
 */
export class Interrupts implements Disposable {
  private readonly controller = new AbortController();
  received: NodeJS.Signals | undefined;

  constructor() {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** 128 + the signal's number, as a shell reports a command a signal ended. */
  get exitCode(): number {
    return 128 + (this.received ? constants.signals[this.received] : 0);
  }

  private readonly onSignal = (sig: NodeJS.Signals): void => {
    if (this.received) process.exit(128 + constants.signals[sig]);
    this.received = sig;
    this.controller.abort(new Error(`interrupted by ${sig}`));
  };

  [Symbol.dispose](): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }
}
