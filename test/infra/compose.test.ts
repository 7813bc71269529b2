import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { COMMON, SERVE_FLAGS } from '../../cli/commands/service.js';
import { parseDuration } from '../../core/duration.js';
import { RETENTION_DEFAULTS } from '../../store/index.js';

interface Service {
  user?: string;
  security_opt?: string[];
  cap_add?: string[];
  secrets?: string[];
  ports?: string[];
  image?: string;
  build?: unknown;
  command?: string[] | string;
  privileged?: boolean;
  deploy?: { replicas?: number };
  volumes?: string[];
  depends_on?: Record<string, unknown> | string[];
}

const root = new URL('../../', import.meta.url);

async function compose(): Promise<{ services: Record<string, Service>; volumes?: Record<string, unknown> }> {
  return parse(await readFile(new URL('compose.yaml', root), 'utf8'));
}

function argv(s: Service | undefined): string[] {
  const c = s?.command;
  return Array.isArray(c) ? c : (c ?? '').split(/\s+/).filter(Boolean);
}

/** The value after `flag` in argv (`--flag value`). */
function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

describe('compose.yaml', () => {
  it('has exactly redis, registry, api and worker', async () => {
    const { services } = await compose();
    expect(Object.keys(services).sort()).toEqual(['api', 'redis', 'registry', 'worker']);
    expect(services['redis']?.image).toMatch(/^redis:7/);
    expect(services['registry']?.image).toMatch(/^registry:2/);
  });

  it('runs redis with persistence and noeviction, as BullMQ requires', async () => {
    const args = argv((await compose()).services['redis']);
    expect(args[0]).toBe('redis-server');
    expect(flag(args, '--appendonly')).toBe('yes');
    expect(flag(args, '--maxmemory-policy')).toBe('noeviction');
    expect((await compose()).services['redis']?.volumes?.some((v) => v.endsWith(':/data'))).toBe(true);
  });

  it('runs the API with the documented command, with tokens (it refuses to start without)', async () => {
    const { services, secrets } = (await compose()) as { services: Record<string, Service>; secrets?: Record<string, { file?: string }> };
    const api = services['api'];
    const args = argv(api);
    expect(args.slice(0, 2)).toEqual(['buildlite', 'serve']);
    expect(flag(args, '--redis')).toBe('redis://redis:6379');
    expect(flag(args, '--listen')).toBe('0.0.0.0:7070');
    expect(api?.build).toBeDefined();
    expect(flag(args, '--tokens')).toBe('/run/secrets/tokens');
    expect(api?.secrets).toContain('tokens');
    expect(secrets?.['tokens']?.file).toMatch(/^\$\{BUILDLITE_TOKENS_FILE:\?/);
  });

  it('uses only flags the commands really have, each with its value', async () => {
    const { services } = await compose();
    const known = { serve: SERVE_FLAGS as Record<string, { type: string }>, worker: COMMON as Record<string, { type: string }> };
    for (const name of ['api', 'worker'] as const) {
      const args = argv(services[name]);
      const table = known[args[1] as 'serve' | 'worker'];
      expect(table, name).toBeDefined();
      for (let i = 2; i < args.length; i++) {
        const a = args[i]!;
        expect(a.startsWith('--'), `${name}: "${a}" is not a flag`).toBe(true);
        const def = table[a.slice(2)];
        expect(def, `${name}: unknown flag ${a}`).toBeDefined();
        if (def!.type === 'string') i++;
      }
    }
  });

  it('API and workers share the store of contexts and step logs; workers may push to the bundled registry', async () => {
    const { services, volumes } = await compose();
    const api = services['api']!;
    const worker = services['worker']!;
    const store = flag(argv(api), '--contexts');
    expect(store).toBeDefined();
    expect(flag(argv(worker), '--contexts')).toBe(store);
    const mount = (s: Service) => s.volumes?.find((v) => v.endsWith(`:${store}`));
    expect(mount(api)).toBeDefined();
    expect(mount(worker)).toBe(mount(api));
    expect(Object.keys(volumes ?? {})).toContain(mount(api)!.split(':')[0]);
    expect(flag(argv(worker), '--insecure-registry')).toBe('registry:5000');
    expect(flag(argv(worker), '--gc-keep-storage')).toMatch(/^\d+[KMGT]?B$/i);
  });

  it('bounds the store: the API runs retention with a keep duration the CLI accepts', async () => {
    const keep = flag(argv((await compose()).services['api']), '--store-keep-duration');
    expect(keep).toBeDefined();
    expect(parseDuration(keep!)).toBeGreaterThanOrEqual(RETENTION_DEFAULTS.minKeepDurationMs);
  });

  it('runs scalable, privileged workers with their own state volume', async () => {
    const worker = (await compose()).services['worker'];
    const args = argv(worker);
    expect(args.slice(0, 2)).toEqual(['buildlite', 'worker']);
    expect(flag(args, '--redis')).toBe('redis://redis:6379');
    expect(Number(flag(args, '--concurrency'))).toBeGreaterThan(0);
    expect(worker?.privileged).toBe(true);
    expect(worker?.deploy?.replicas).toBeGreaterThanOrEqual(2);
    // Anonymous (per-replica) volume: no `name:` before the path.
    expect(worker?.volumes).toContain('/var/lib/buildlite');
  });

  it('services wait for redis, and the image is built from the root Dockerfile', async () => {
    const { services } = await compose();
    for (const name of ['api', 'worker']) {
      const deps = services[name]?.depends_on;
      const names = Array.isArray(deps) ? deps : Object.keys(deps ?? {});
      expect(names).toContain('redis');
    }
    const dockerfile = await readFile(new URL('Dockerfile', root), 'utf8');
    expect(dockerfile).toMatch(/^FROM node:20-bookworm-slim/m);
    expect(dockerfile).toMatch(/install[^\n]*\brunc\b/);
    // The image runs the same bundled bin as everyone else, built by the same script.
    expect(dockerfile).toMatch(/dist\/bundle\/main\.js/);
    expect(dockerfile).toMatch(/node scripts\/bundle\.mjs/);
    // getfattr is what the layer differ reads opaque markers with.
    expect(dockerfile).toMatch(/install[^\n]*\battr\b/);
  });
});

describe('compose.rootless.yaml', () => {
  async function override(): Promise<{ services: Record<string, Service> }> {
    return parse(await readFile(new URL('compose.rootless.yaml', root), 'utf8'));
  }

  it('runs the API and workers as the unprivileged node user, with no privileged container and no added capability', async () => {
    const { services } = await override();
    expect(Object.keys(services).sort()).toEqual(['api', 'worker']);
    for (const s of Object.values(services)) {
      expect(s.user).toBe('node');
      expect(s.cap_add).toBeUndefined();
    }
    expect(services['worker']?.privileged).toBe(false);
    // What a nested user namespace, overlay and a step's /proc need instead (as for BuildKit's rootless image).
    expect(services['worker']?.security_opt?.sort()).toEqual(['apparmor=unconfined', 'seccomp=unconfined', 'systempaths=unconfined']);
    // It overrides compose.yaml only where it must: commands, volumes and replicas stay that file's.
    expect(services['worker']?.command).toBeUndefined();
    expect(services['worker']?.volumes).toBeUndefined();
  });

  it('the image gives node its subordinate ids, newuidmap and the state and store directories', async () => {
    const dockerfile = await readFile(new URL('Dockerfile', root), 'utf8');
    expect(dockerfile).toMatch(/install[^\n]*\buidmap\b/);
    expect(dockerfile).toContain("echo 'node:100000:65536' > /etc/subuid");
    expect(dockerfile).toContain("echo 'node:100000:65536' > /etc/subgid");
    const { services } = await compose();
    // The directories the volumes of compose.yaml mount on belong to node, so fresh volumes do too.
    for (const dir of ['/var/lib/buildlite', '/var/lib/buildlite-store']) {
      expect(services['worker']?.volumes?.some((v) => v === dir || v.endsWith(`:${dir}`))).toBe(true);
      expect(dockerfile).toMatch(new RegExp(`install -d[^\\n]*-o node -g node ${dir.replace(/[/.-]/g, '\\$&')}\\b`));
    }
    expect(dockerfile).toMatch(/^ENV BUILDLITE_ROOT=\/var\/lib\/buildlite$/m);
  });
});

