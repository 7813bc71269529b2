import { Readable } from 'node:stream';
import { pack } from 'tar-stream';

/** A tar of the given files (path → content), as a stream. */
export function tarOf(files: Record<string, string>): Readable {
  const p = pack();
  for (const [name, content] of Object.entries(files)) p.entry({ name, mode: 0o644, mtime: new Date(0) }, content);
  p.finalize();
  return p as unknown as Readable;
}

export function emptyTar(): Readable {
  return tarOf({ '.keep': '' });
}
