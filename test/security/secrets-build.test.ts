import { randomBytes } from 'node:crypto';
import { lstat, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder } from '../../core/mounter.js';
import { readPushedImage, SecurityEnv } from './harness.js';

/** Every regular file under dir, gunzipped when it is gzip, as [path, bytes]. */
async function* stateFiles(dir: string): AsyncGenerator<[string, Buffer]> {
  for (const name of await readdir(dir)) {
    const p = path.join(dir, name);
    const st = await lstat(p);
    if (st.isDirectory()) yield* stateFiles(p);
    else if (st.isFile()) {
      const b = await readFile(p);
      let plain = b;
      if (b[0] === 0x1f && b[1] === 0x8b) {
        try {
          plain = gunzipSync(b);
        } catch {
          // an ingest cut short: scan the raw bytes
        }
      }
      yield [p, plain];
    }
  }
}

/** docs/security.md T5: secret mounts (file and env) leave no trace anywhere a build writes. */
describe('secrets never land', () => {
  let env: SecurityEnv;
  const value = `s3cr3t-${randomBytes(12).toString('hex')}`;

  beforeAll(async () => {
    env = await SecurityEnv.start();
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('a file and env secret appear in no layer, stub, history, config, event, log or state file', async () => {
    const { builder, root } = await env.builder();
    const ref = `${env.registry.host}/sec/secrets:1`;
    const dockerfile = [
      `FROM ${env.base}`,
      // default target /run/secrets/s
      `RUN --mount=type=secret,id=s test "$(cat /run/secrets/s)" = "${'$'}(cat /run/secrets/s)" && echo read-default && echo one > /one`,
      // a target whose parents do not exist in the image: runc would create them as stubs
      `RUN --mount=type=secret,id=s,target=/deep/hidden/tree/secretfile wc -c /deep/hidden/tree/secretfile && echo two > /two`,
      // env secrets: the step prints it on purpose, the log must mask it
      `RUN --mount=type=secret,id=s,env=MY_TOKEN sh -c 'test -n "$MY_TOKEN" && echo env-set; echo "printed:$MY_TOKEN"; echo three > /three'`,
      `RUN --mount=type=secret,id=s,target=/etc/secret.conf,required=true cat /etc/secret.conf >/dev/null && echo four > /four`,
    ].join('\n');
    const out = await env.build(builder, dockerfile, {
      secrets: new Map([['s', Buffer.from(value)]]),
      request: { outputs: [{ type: 'registry', refs: [ref] }] },
      debugCache: true,
    });
    expect(out.error).toBeUndefined();
    expect(out.logs).toContain('read-default');
    expect(out.logs).toContain(`${value.length} /deep/hidden/tree/secretfile`);
    expect(out.logs).toContain('env-set');
    expect(out.logs).toContain('printed:');

    // Events, logs included.
    expect(JSON.stringify(out.events)).not.toContain(value);

    // The pushed image: every layer entry's name and bytes, the config, the manifest.
    const img = await readPushedImage(ref);
    expect(img.layers.length).toBe(5);
    const names = img.layers.flat().map((e) => e.name.replace(/^\.?\//, ''));
    expect(names).toEqual(expect.arrayContaining(['one', 'two', 'three', 'four']));
    for (const e of img.layers.slice(1).flat()) {
      expect(e.data.includes(value), e.name).toBe(false);
      expect(e.name).not.toMatch(/secret|deep|hidden|\.wh\./);
    }
    // Nothing of /run, /deep or /etc/secret.conf in the RUN layers: not even an empty stub.
    expect(img.layers.slice(1).flat().map((e) => e.name.replace(/^\.?\//, '').replace(/\/$/, ''))).toEqual(['one', 'two', 'three', 'four']);
    const config = JSON.parse(img.configBytes.toString()) as { config?: { Env?: string[] }; history?: { created_by?: string }[] };
    expect(img.configBytes.includes(value)).toBe(false);
    expect(img.manifestBytes.includes(value)).toBe(false);
    expect(config.config?.Env?.some((e) => e.startsWith('MY_TOKEN'))).toBe(false);
    expect(config.history?.length).toBeGreaterThan(4);

    // Everything the builder wrote to its state root: blobs (gunzipped), cache index and key pre-images, logs.
    let scanned = 0;
    for await (const [p, bytes] of stateFiles(root)) {
      scanned++;
      expect(bytes.includes(value), p).toBe(false);
    }
    expect(scanned).toBeGreaterThan(5);
    expect(await mountsUnder(root)).toEqual([]);
  });

  it('a failing step that printed a secret: not in the error, the events or the state root', async () => {
    const { builder, root } = await env.builder();
    const out = await env.build(builder, `FROM ${env.base}\nRUN --mount=type=secret,id=s,env=T sh -c 'echo "$T"; echo "$T" >&2; exit 4'\n`, {
      secrets: new Map([['s', Buffer.from(value)]]),
    });
    expect(out.error?.code).toBe('EXEC_FAILED');
    expect(JSON.stringify(out.events)).not.toContain(value);
    for await (const [p, bytes] of stateFiles(root)) expect(bytes.includes(value), p).toBe(false);
  });

  it('a missing required secret fails before the step runs and names the id, not a value', async () => {
    const { builder } = await env.builder();
    const out = await env.build(builder, `FROM ${env.base}\nRUN --mount=type=secret,id=absent,required=true echo ran\n`);
    expect(out.error?.code).toBe('NOT_FOUND');
    expect(out.error?.message).toContain('absent');
    expect(out.logs).not.toContain('ran');
  });
});
