import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { BuildRequest } from '../core/build.js';
import { BuildliteError, CodedError } from '../core/errors.js';
import { readAllBounded } from '../core/streams.js';
import { resolveInRoot } from '../core/safe-path.js';
import type { RemoteContext } from '../builder/index.js';

/**
 * The request for a context fetched from a URL: the Dockerfile is read from
 * inside it (`-f` is a path in the context, as with docker build and a remote
 * context; a URL that was a Dockerfile is the Dockerfile), resolved inside the
 * context so a symlink in a repository cannot make it a file of this machine.
 */
export async function remoteContextRequest(req: BuildRequest, ctx: RemoteContext, url: string, file: string, maxBytes: number): Promise<BuildRequest> {
  const name = ctx.dockerfileOnly ? 'Dockerfile' : file;
  const at = await resolveInRoot(ctx.dir, name);
  const stream = createReadStream(at);
  // Read within the Dockerfile limit: a repository's "Dockerfile" may be anything.
  const dockerfile = (
    await readAllBounded(stream, maxBytes, `the Dockerfile ${name}`).catch((err: NodeJS.ErrnoException) => {
      if (err instanceof BuildliteError) throw err;
      throw new CodedError('NOT_FOUND', `the context ${url} has no Dockerfile ${name} (${err.code ?? err.message}): name it with -f, relative to the context`);
    })
  ).toString('utf8');
  // <Dockerfile>.dockerignore wins over the context's .dockerignore, as for a local context.
  const ignore = await readFile(`${at}.dockerignore`, 'utf8').catch(() => undefined);
  return { ...req, dockerfile, dockerfileName: path.posix.basename(name), ...(ignore !== undefined ? { dockerignore: ignore } : {}), context: { dir: ctx.dir } };
}
