import type { BuildEventBody } from '../../core/build.js';
import type { Digest } from '../../core/digest.js';

/**
 * Step output into log events. The event stream carries at most `cap` bytes
 * per step and then says so once, so one chatty step cannot flood a terminal,
 * Redis or memory. Secret values are masked in what is emitted.
 */
export class LogSink {
  private sent = 0;
  private clipped = false;
  private readonly secrets: string[];

  constructor(
    private readonly vertex: Digest,
    private readonly emit: (e: BuildEventBody) => void,
    secrets: readonly Buffer[],
    // 4 MiB: BuildKit clips at 2 MiB by default; users asked for more, not less.
    private readonly cap = 4 * 1024 * 1024,
  ) {
    this.secrets = secrets.map((s) => s.toString('utf8')).filter((s) => s.length >= 4);
  }

  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    if (this.clipped) return;
    if (this.sent + chunk.length > this.cap) {
      this.clipped = true;
      this.emit({ type: 'log', vertex: this.vertex, stream: 'stderr', data: `\n[output clipped: this step printed more than ${this.cap} bytes]\n` });
      return;
    }
    this.sent += chunk.length;
    let data = chunk.toString('utf8');
    for (const s of this.secrets) data = data.split(s).join('****');
    this.emit({ type: 'log', vertex: this.vertex, stream, data });
  }

  end(): void {}
}
