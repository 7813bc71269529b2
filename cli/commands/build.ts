import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { type BuildRequest, type CacheSpec, type NamedContext, type NetworkMode, type OutputSpec } from '../../core/build.js';
import { CodedError } from '../../core/errors.js';
import { isGitUrl } from '../../core/git-url.js';
import { checkNetworkRequest } from '../../core/request-rules.js';
import { mergeLimits } from '../../core/limits.js';
import type { Platform } from '../../core/oci.js';
import { parsePlatformList, PlatformError, targetPlatforms } from '../../core/platform.js';
import type { ParsedBuild } from '../parsed-build.js';
import { checkReferenceFlag, defaultRoot, httpTimeoutsFlag, isTruthy, parseFlags, parseKeyValues } from '../flags.js';
import { limitFlagsGiven, limitsFromFlags, withLimitFlags } from '../limit-flags.js';
import { REMOTE_FLAGS, serverOf } from '../remote-flags.js';
import { parseSshFlag } from '../ssh-agents.js';
import { parseBuildContext } from '../build-contexts.js';
import { UsageError } from '../usage.js';

const FLAGS = withLimitFlags({
  file: { type: 'string', short: 'f' },
  tag: { type: 'string', short: 't', multiple: true },
  'build-arg': { type: 'string', multiple: true },
  target: { type: 'string' },
  push: { type: 'boolean' },
  output: { type: 'string', short: 'o', multiple: true },
  'cache-from': { type: 'string', multiple: true },
  'cache-to': { type: 'string', multiple: true },
  'no-cache': { type: 'boolean' },
  'no-cache-filter': { type: 'string', multiple: true },
  secret: { type: 'string', multiple: true },
  ssh: { type: 'string', multiple: true },
  'build-context': { type: 'string', multiple: true },
  network: { type: 'string' },
  allow: { type: 'string', multiple: true },
  'allow-host-network': { type: 'boolean' },
  'allow-security-insecure': { type: 'boolean' },
  'allow-private-urls': { type: 'boolean' },
  'http-timeouts': { type: 'string' },
  label: { type: 'string', multiple: true },
  platform: { type: 'string' },
  progress: { type: 'string' },
  iidfile: { type: 'string' },
  'metadata-file': { type: 'string' },
  root: { type: 'string' },
  'insecure-registry': { type: 'string', multiple: true },
  ...REMOTE_FLAGS,
  detach: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  'debug-cache': { type: 'boolean' },
  check: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const);

/** Set by `run` when CONTEXT is `-`: stdin was extracted there. */
export interface ParseOverrides {
  readonly contextDir?: string;
}

/** argv → a BuildRequest plus the local-only parts (secrets' values, files to write). Pure but for reading files. */
export async function parseBuild(argv: string[], over: ParseOverrides = {}): Promise<ParsedBuild> {
  const { values: v, positionals } = parseFlags('build', argv, FLAGS);
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'build needs exactly one CONTEXT argument' : `build takes one CONTEXT, got ${positionals.length}`, 'build');
  const contextArg = positionals[0]!;
  // The checks need no builder, only the Dockerfile and its bases' configs: they run here, and a
  // pipeline that sets BUILDLITE_SERVER (or --server) for its builds gets the same report.
  const server = v.check ? undefined : serverOf(v);
  if (contextArg === '-' && !over.contextDir) throw new UsageError('a context on stdin (-) is only read by an embedded build', 'build');
  if (v.detach && !server) throw new UsageError('--detach leaves a build running on a build service: it needs --server (or BUILDLITE_SERVER)', 'build');
  // A URL context is fetched by the builder that runs the build (this one, or a service's worker),
  // and its Dockerfile read from inside it (builder/remote-context.ts): nothing is read or uploaded here.
  const remote = !over.contextDir && (isGitUrl(contextArg) || /^https?:\/\//i.test(contextArg)) ? { url: contextArg, file: v.file ?? 'Dockerfile' } : undefined;
  const contextDir = remote ? '' : (over.contextDir ?? path.resolve(contextArg));
  // With a context on stdin, a relative -f names a file inside it (as docker build does).
  const dockerfilePath = v.file ? path.resolve(over.contextDir ?? '.', v.file) : path.join(contextDir, 'Dockerfile');
  const dockerfile = remote ? '' : await readFile(dockerfilePath, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read Dockerfile ${dockerfilePath}: ${err.code ?? err.message}`, 'build');
  });
  // <Dockerfile>.dockerignore wins over the context's .dockerignore, as in BuildKit.
  const specificIgnore = remote ? undefined : await readFile(`${dockerfilePath}.dockerignore`, 'utf8').catch(() => undefined);

  const buildArgs: Record<string, string> = {};
  for (const a of v['build-arg'] ?? []) {
    const eq = a.indexOf('=');
    if (eq === 0) throw new UsageError(`--build-arg "${a}": empty name`, 'build');
    if (eq < 0) {
      const fromEnv = process.env[a];
      if (fromEnv !== undefined) buildArgs[a] = fromEnv;
    } else buildArgs[a.slice(0, eq)] = a.slice(eq + 1);
  }
  const labels: Record<string, string> = {};
  for (const l of v.label ?? []) {
    const eq = l.indexOf('=');
    if (eq <= 0) throw new UsageError(`--label "${l}": want KEY=VALUE`, 'build');
    labels[l.slice(0, eq)] = l.slice(eq + 1);
  }

  // References are checked here, before any step runs: a typo or a password in one is a usage error.
  const tags = (v.tag ?? []).map((t) => checkReferenceFlag('build', '-t', t));
  const outputs: OutputSpec[] = (v.output ?? []).map((o) => parseOutput(o, tags));
  if (v.push) {
    if (tags.length === 0) throw new UsageError('--push needs at least one -t/--tag', 'build');
    outputs.push({ type: 'registry', refs: tags });
  } else if (tags.length > 0 && !outputs.some((o) => o.type === 'registry')) {
    outputs.push({ type: 'image', refs: tags });
  }

  let network: NetworkMode;
  try {
    network = checkNetworkRequest({ network: v.network ?? 'default', allow: v.allow ?? [] });
  } catch (err) {
    // A value no build knows is a bad command line; network=host not asked for is a refused build (exit 1), as it is at every door.
    if (err instanceof CodedError && err.code === 'INVALID_ARGUMENT') throw new UsageError(err.message, 'build');
    throw err;
  }
  const allowSecurityInsecure = (v['allow-security-insecure'] ?? false) || isTruthy(process.env['BUILDLITE_ALLOW_SECURITY_INSECURE']);
  const allowHostNetwork = (v['allow-host-network'] ?? false) || isTruthy(process.env['BUILDLITE_ALLOW_HOST_NETWORK']);
  // Grants and limits of the machine the build runs on: a build service has its operator's (worker flags).
  if (server && v['allow-private-urls']) throw new UsageError('--allow-private-urls is for an embedded build: on a build service the operator allows it (buildlite worker --allow-private-urls)', 'build');
  if (server && v['http-timeouts'] !== undefined) throw new UsageError('--http-timeouts is for an embedded build: on a build service the operator sets it (buildlite worker --http-timeouts)', 'build');
  const allowPrivateUrls = (v['allow-private-urls'] ?? false) || isTruthy(process.env['BUILDLITE_ALLOW_PRIVATE_URLS']);
  const timeouts = server ? undefined : httpTimeoutsFlag('build', v['http-timeouts']);
  const given = limitFlagsGiven(v);
  if (server && given.length > 0) {
    throw new UsageError(`${given.join(', ')}: a build service's limits are its operator's (buildlite worker ${given[0]} ...); an embedded build sets its own`, 'build');
  }
  const limits = limitsFromFlags('build', v);
  const progress = v.quiet ? 'quiet' : (v.progress ?? 'auto');
  if (!['auto', 'tty', 'plain', 'json'].includes(progress) && !v.quiet) throw new UsageError(`--progress "${progress}": want auto, tty, plain or json`, 'build');
  if (outputs.some((o) => 'dest' in o && o.dest === '-') && (progress === 'json' || progress === 'quiet')) {
    throw new UsageError('an output to stdout (dest=-) cannot be combined with --progress json or --quiet, which also write to stdout', 'build');
  }
  const platforms = v.platform === undefined ? undefined : platformsFlag(v.platform);

  const secrets = new Map<string, Buffer>();
  for (const s of v.secret ?? []) {
    const kv = parseKeyValues('build', '--secret', s);
    const id = kv.get('id');
    if (!id) throw new UsageError(`--secret "${s}": id= is required`, 'build');
    const src = kv.get('src') ?? kv.get('source');
    const env = kv.get('env');
    if (src) secrets.set(id, await readFile(path.resolve(src)).catch(() => { throw new UsageError(`--secret id=${id}: cannot read its file`, 'build'); }));
    else {
      const val = process.env[env ?? id];
      if (val === undefined) throw new UsageError(`--secret id=${id}: environment variable ${env ?? id} is not set`, 'build');
      secrets.set(id, Buffer.from(val));
    }
  }
  // A build service cannot reach an agent socket on this machine, and buildlite does not tunnel one (docs/security.md T5).
  if (server && v.ssh?.length) throw new UsageError('--ssh forwards an ssh agent of this machine, which a build service cannot reach: build without --server, or fetch private git repositories over https with a GIT_AUTH_TOKEN secret', 'build');
  const ssh = (v.ssh ?? []).map(parseSshFlag);
  if (new Set(ssh.map((x) => x.id)).size !== ssh.length) throw new UsageError('--ssh: an id is given twice', 'build');
  const namedContexts: Record<string, NamedContext> = {};
  for (const flag of v['build-context'] ?? []) {
    const [name, context] = parseBuildContext(flag);
    if (Object.hasOwn(namedContexts, name)) throw new UsageError(`--build-context: ${name} is given twice`, 'build');
    namedContexts[name] = context;
  }
  const cacheFrom = (v['cache-from'] ?? []).map((c) => parseCache(c, '--cache-from'));
  const cacheTo = (v['cache-to'] ?? []).map((c) => parseCache(c, '--cache-to'));
  const epoch = process.env['SOURCE_DATE_EPOCH'];
  if (epoch !== undefined && !/^\d+$/.test(epoch)) throw new UsageError(`SOURCE_DATE_EPOCH "${epoch}": want seconds since the epoch`, 'build');
  const insecure = v['insecure-registry'] ?? [];

  const request: BuildRequest = {
    dockerfile,
    dockerfileName: path.basename(dockerfilePath),
    ...(specificIgnore !== undefined ? { dockerignore: specificIgnore } : {}),
    context: { dir: contextDir },
    buildArgs,
    ...(v.target ? { target: v.target } : {}),
    labels,
    outputs,
    ...(cacheFrom.length ? { cacheFrom } : {}),
    ...(cacheTo.length ? { cacheTo } : {}),
    noCache: v['no-cache'] ?? false,
    noCacheFilter: v['no-cache-filter'] ?? [],
    secrets: [...secrets.keys()].map((id) => ({ id })),
    network,
    allow: v.allow ?? [],
    ...(platforms ? { platforms } : {}),
    ...(epoch !== undefined ? { sourceDateEpoch: Number(epoch) } : {}),
    insecureRegistries: insecure,
    ...(Object.keys(namedContexts).length ? { namedContexts } : {}),
  };
  return {
    request,
    secrets,
    ssh,
    ...(remote ? { remoteContext: remote } : {}),
    root: v.root ?? defaultRoot(),
    progress: progress as ParsedBuild['progress'],
    ...(v.iidfile ? { iidfile: v.iidfile } : {}),
    ...(v['metadata-file'] ? { metadataFile: v['metadata-file'] } : {}),
    insecure,
    ...(server ? { server } : {}),
    ...(v.token ? { token: v.token } : {}),
    detach: v.detach ?? false,
    debugCache: v['debug-cache'] ?? false,
    check: v.check ?? false,
    allowHostNetwork,
    allowSecurityInsecure,
    allowPrivateUrls,
    ...(timeouts ? { timeouts } : {}),
    limits,
  };
}

/** `--platform linux/amd64,linux/arm64`, under the rule every entry point applies (core/platform.ts). */
function platformsFlag(value: string): Platform[] {
  try {
    return targetPlatforms(parsePlatformList(value));
  } catch (err) {
    if (err instanceof PlatformError) throw new UsageError(`--platform: ${err.message}`, 'build');
    throw err;
  }
}

function parseOutput(value: string, tags: readonly string[]): OutputSpec {
  const kv = parseKeyValues('build', '--output', value);
  const type = kv.get('type') ?? (kv.size === 1 && kv.has(value) ? 'local' : undefined);
  const dest = kv.get('dest') ?? (type === 'local' && kv.has(value) ? value : undefined);
  switch (type) {
    case 'registry': {
      const names = kv.get('name')?.split(';').map((n) => checkReferenceFlag('build', '--output name', n)) ?? [...tags];
      if (names.length === 0) throw new UsageError('--output type=registry needs name=REF or -t', 'build');
      return { type: 'registry', refs: names };
    }
    case 'image':
      return { type: 'image', refs: kv.get('name')?.split(';').map((n) => checkReferenceFlag('build', '--output name', n)) ?? [...tags] };
    case 'oci':
    case 'local':
    case 'tar':
      if (!dest) throw new UsageError(`--output type=${type} needs dest=PATH`, 'build');
      if (dest === '-' && type !== 'tar') throw new UsageError(`--output type=${type}: dest=- (stdout) is only for type=tar`, 'build');
      if (type === 'tar') return { type, dest: dest === '-' ? '-' : path.resolve(dest) };
      return type === 'oci' ? { type, dest: path.resolve(dest), refs: [...tags] } : { type, dest: path.resolve(dest) };
    default:
      throw new UsageError(`--output "${value}": type must be registry, oci, local or tar`, 'build');
  }
}

function parseCache(value: string, flag: string): CacheSpec {
  const kv = parseKeyValues('build', flag, value);
  const mode = kv.get('mode');
  if (mode !== undefined && mode !== 'min' && mode !== 'max') throw new UsageError(`${flag}: mode must be min or max`, 'build');
  const ignoreError = kv.get('ignore-error') === 'true';
  const common: { mode?: 'min' | 'max'; ignoreError?: boolean } = { ...(mode ? { mode } : {}), ...(ignoreError ? { ignoreError } : {}) };
  switch (kv.get('type')) {
    case 'registry': {
      const ref = kv.get('ref');
      if (!ref) throw new UsageError(`${flag} type=registry needs ref=REF`, 'build');
      return { type: 'registry', ref: checkReferenceFlag('build', `${flag} ref`, ref), ...common };
    }
    case 'local': {
      const dir = kv.get(flag === '--cache-to' ? 'dest' : 'src');
      if (!dir) throw new UsageError(`${flag} type=local needs ${flag === '--cache-to' ? 'dest' : 'src'}=DIR`, 'build');
      return { type: 'local', dir: path.resolve(dir), ...common };
    }
    default:
      throw new UsageError(`${flag} "${value}": type must be registry or local`, 'build');
  }
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    const { usageOf } = await import('./help.js');
    process.stdout.write(`${usageOf('build')}\n`);
    return 0;
  }
  const stdinCtx = await maybeStdinContext(argv);
  try {
    return await runParsed(await parseBuild(argv, stdinCtx ? { contextDir: stdinCtx.dir } : {}));
  } finally {
    await stdinCtx?.remove();
  }
}

/** CONTEXT `-` in embedded mode: stdin into a temp dir under the state root, removed after the build. */
async function maybeStdinContext(argv: string[]) {
  const { values: v, positionals } = parseFlags('build', argv, FLAGS);
  if (positionals.length !== 1 || positionals[0] !== '-' || serverOf(v)) return undefined;
  const { readStdinContext } = await import('../stdin-context.js');
  return readStdinContext(path.join(v.root ?? defaultRoot(), 'tmp'), mergeLimits(limitsFromFlags('build', v)));
}

async function runParsed(parsed: ParsedBuild): Promise<number> {
  if (parsed.check) return (await import('../check.js')).runCheck(parsed);
  if (parsed.server) return (await import('../remote-build.js')).runRemoteBuild(parsed);
  const { runLocalBuild } = await import('../local-build.js');
  return runLocalBuild(parsed);
}
