import { chmod, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drive, writeTree } from '../helpers/build-driver.js';
import { startBuilderEnv, type BuilderEnv } from '../helpers/builder-env.js';

/** The Dockerfile forms BuildKit users bring, built for real: what lands in the image. */
describe('Dockerfile forms in a whole build', () => {
  let env: BuilderEnv;
  let out: string;

  beforeAll(async () => {
    env = await startBuilderEnv('forms');
    const ctx = path.join(env.tmp, 'ctx');
    const base = env.base;
    await writeTree(ctx, {
      'pkg/a/package.json': '{"name":"a"}\n',
      'pkg/a/README.md': 'not copied\n',
      'pkg/b/deep/package.json': '{"name":"b"}\n',
      'package.json': '{"name":"root"}\n',
      'monorepo/apps/web/index.js': 'web\n',
      'monorepo/apps/api/index.js': 'api\n',
      'tool.sh': '#!/bin/sh\necho tool\n',
      Dockerfile: [
        `FROM ${base} AS data`,
        'RUN mkdir -p /out && echo from-data > /out/data.txt',
        `FROM ${base}`,
        // ** spans directories, none included; only package.json files come, with their paths.
        'COPY --parents **/package.json /app/',
        // What follows the /./ pivot keeps its path; what precedes it does not.
        'COPY --parents monorepo/./apps/web/index.js /pivot/',
        'COPY --chmod=u+x,go-w tool.sh /usr/local/bin/tool',
        'WORKDIR /mnt/data',
        // No target: the stage is mounted at the working directory.
        'RUN --mount=from=data,source=/out cat data.txt > /from-mount.txt',
        // Starts with [ but is no JSON array: a shell test.
        'RUN [ "$(cat /from-mount.txt)" = "from-data" ] && echo passed > /bracket.txt',
        '',
      ].join('\n'),
    });
    await chmod(path.join(ctx, 'tool.sh'), 0o664);
    out = path.join(env.tmp, 'rootfs');
    const r = await drive(env.builder, { dockerfile: await readFile(path.join(ctx, 'Dockerfile'), 'utf8'), context: { dir: ctx }, outputs: [{ type: 'local', dest: out }] });
    expect(r.error).toBeUndefined();
  });

  afterAll(async () => {
    await env?.stop();
  });

  const read = (p: string) => readFile(path.join(out, p), 'utf8');
  const list = async (dir: string): Promise<string[]> => {
    const found: string[] = [];
    for (const e of await readdir(path.join(out, dir), { recursive: true, withFileTypes: true })) {
      if (e.isFile()) found.push(path.relative(path.join(out, dir), path.join(e.parentPath, e.name)));
    }
    return found.sort();
  };

  it('COPY --parents with ** keeps each match\'s directories and nothing else', async () => {
    expect(await list('app')).toEqual(['package.json', 'pkg/a/package.json', 'pkg/b/deep/package.json']);
    expect(await read('app/pkg/b/deep/package.json')).toBe('{"name":"b"}\n');
  });

  it('COPY --parents keeps only what follows a /./ pivot', async () => {
    expect(await list('pivot')).toEqual(['apps/web/index.js']);
  });

  it('--chmod with a symbolic mode changes the file\'s own mode', async () => {
    expect((await stat(path.join(out, 'usr/local/bin/tool'))).mode & 0o7777).toBe(0o744);
  });

  it('a bind mount without a target is at the working directory, and leaves nothing there', async () => {
    expect(await read('from-mount.txt')).toBe('from-data\n');
    expect(await readdir(path.join(out, 'mnt/data'))).toEqual([]);
  });

  it('RUN [ ... ] that is not JSON runs in the shell', async () => {
    expect(await read('bracket.txt')).toBe('passed\n');
  });
});
