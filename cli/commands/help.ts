import { BUILD_LIMIT_DEFAULTS, formatLimit, LIMIT_SPECS, type LimitName } from '../../core/limits.js';

const ARG = { duration: 'D', bytes: 'SIZE', count: 'N', cpus: 'N' } as const;

/** Limit flags made from core/limits.ts's table (all of them, or all but `except`). */
const limitFlagLines = (except: readonly LimitName[] = []) => (Object.keys(LIMIT_SPECS) as LimitName[])
  .filter((n) => !except.includes(n))
  .map((n) => {
    const { key, kind, what } = LIMIT_SPECS[n];
    const flag = `      --${key} ${ARG[kind]}`;
    const text = `${what[0]!.toUpperCase()}${what.slice(1)} (default ${formatLimit(n, BUILD_LIMIT_DEFAULTS[n])})`;
    return flag.length < 29 ? `${flag.padEnd(29)}${text}` : `${flag}\n${' '.repeat(29)}${text}`;
  })
  .join('\n');

/** What the limits mean where they are set; the per-command sentence comes first. */
const limitOptions = (except: readonly LimitName[] = []) => `${limitFlagLines(except)}
  Durations as 90s, 30m, 2h; sizes as 512MiB, 4GiB. A limit a build passes fails it with
  LIMIT_EXCEEDED naming the limit; one this machine's cgroups cannot enforce is warned of at start.`;
const LIMIT_OPTIONS = limitOptions();

/** A worker's own options: `worker`'s, and `serve --embedded-worker`'s. */
const WORKER_OPTIONS = `      --id ID                Worker id (default HOSTNAME-PID-RANDOM); letters, digits, . _ -
      --concurrency N        Builds at once (default 2)
      --platforms LIST       Platforms to offer, e.g. linux/amd64,linux/arm64 (default: this machine's
                             own and every one QEMU runs here); builds are routed by them
      --allow-host-network   Operator: allow RUN --network=host for tokens granted network.host
      --allow-security-insecure  Operator: allow RUN --security=insecure (all capabilities, no
                             seccomp, every device: root on this machine) for tokens granted
                             security.insecure
      --allow-url-network CIDR  Operator: let ADD <url>, git sources and URL contexts reach this
                             loopback, private or link-local network (repeatable; all of them
                             are refused by default); give serve the same, as it checks URL
                             contexts before queueing
      --allow-private-urls   Operator: let them reach every such address (cloud metadata too)
      --http-timeouts SPEC   Stall limits of registry requests and ADD <url> fetches:
                             connect=10s,headers=30s,idle=60s (the defaults; any subset), or
                             BUILDLITE_HTTP_TIMEOUTS; a stall is retried like a reset
      --gc-keep-storage SIZE Hard cap on the build cache (e.g. 20GB), enforced continuously
      --gc-keep-duration D   Also remove cache unused for longer than D (e.g. 7d)
      --gc-interval D        Time between GC passes (default 60s; each build's end also runs one)
      --lock-ms N            Job lock duration (default 15000): a dead worker's build moves after it
      --stalled-ms N         Stalled-job check interval (default 10000)
      --heartbeat-ms N       Worker heartbeat TTL (default 15000)`;

/** The options `serve` and `worker` share, listed once. */
const SERVICE_OPTIONS = `Options of both serve and worker:
      --redis URL            Redis (redis://[:PASSWORD@]HOST:PORT[/DB]), or BUILDLITE_REDIS_URL; waited for at start
      --contexts DIR|registry://HOST/REPO
                             Where contexts and full step logs are stored: a directory shared with
                             every worker (default ROOT/contexts), or a registry repository when
                             API and workers share no disk
      --prefix P             Redis key prefix (default bl): several services can share one Redis
      --insecure-registry H  Allow plain HTTP to registry H (repeatable; loopback always may)
      --metrics HOST:PORT    Serve Prometheus metrics on http://HOST:PORT/metrics
      --drain-seconds N      On SIGTERM, let running builds finish this long before handing
                             them back to the queue (default 30)
      --root DIR             State directory (default: $BUILDLITE_ROOT, /var/lib/buildlite as root)`;

/** The options of every command that talks to a build service. */
const REMOTE_OPTIONS = `      --server HOST:PORT     The build service (or BUILDLITE_SERVER)
      --token T              Bearer token (or BUILDLITE_TOKEN)

Exit codes: 0 done, 1 failed (or the server cannot be reached), 2 bad command
line, 3 the server refused the token.`;

const USAGE: Record<string, string> = {
  help: `Usage: buildlite COMMAND [OPTIONS]

Commands:
  build     Build an image from a Dockerfile and a context directory
  push      Push an image built with -t to its registry
  graph     Print the build graph of a Dockerfile (json, dot, mermaid)
  login     Store credentials for a registry in $DOCKER_CONFIG/config.json
  logout    Remove stored credentials for a registry
  du        Show disk used by the build cache, by kind
  prune     Remove build cache (by age, size or filter)
  debug     Explain cache misses (debug why-miss)

Builds on a build service (--server HOST:PORT --token T, or BUILDLITE_SERVER and
BUILDLITE_TOKEN; build, du and prune then run there too):
  ls        List builds (an admin token sees every client's)
  inspect   Show one build: state, worker, times, image or error
  watch     Follow a build's progress (also: attach); Ctrl-C stops watching
  cancel    Cancel builds
  logs      Print the full log of a step of a build
  workers   List the workers: platform, load, running builds, cache, heartbeat

  serve     Run the build API (service mode)
  worker    Run a build worker (service mode)
  version   Print the version

Run 'buildlite help COMMAND' for a command's options.`,
  build: `Usage: buildlite build [OPTIONS] CONTEXT

CONTEXT is a directory, or - to read a tar of the context (plain, gzip, bzip2,
xz) or a bare Dockerfile from stdin, or a URL the builder fetches (under the
ADD <url> policy; with --server, the service's worker fetches it and nothing is
uploaded): a git repository (https://host/repo.git#REF:SUBDIR,
git@host:repo.git, ssh://, git://) or a tarball or Dockerfile over http(s).

  -f, --file FILE            Dockerfile (default: CONTEXT/Dockerfile; inside the context for - and URLs)
  -t, --tag REF              Name the image (repeatable)
      --push                 Push the image to every -t ref
  -o, --output SPEC          Where the image goes (repeatable):
                               type=registry[,name=REF]   push (to -t refs by default)
                               type=oci,dest=FILE.tar     OCI image layout tar
                               type=local,dest=DIR        the final root filesystem
                               type=tar,dest=FILE|-       the final root filesystem as a tar
      --build-arg K=V        Set a build arg; plain K takes its value from the environment
      --target STAGE         Build up to this stage (default: the last one)
      --label K=V            Add a label to the image (repeatable)
      --secret id=ID,src=FILE|env=VAR  Expose a secret to RUN --mount=type=secret
      --ssh default|ID[=SOCKET|KEYFILE[,KEYFILE]]  Forward an ssh agent (default: $SSH_AUTH_SOCK;
                             key files go into an agent started for the build) to
                             RUN --mount=type=ssh and git sources over ssh; embedded builds only
      --build-context NAME=VALUE  What FROM NAME, COPY --from=NAME and RUN --mount=from=NAME
                             use, before a stage or image of that name (repeatable): a
                             directory, docker-image://REF, oci-layout://PATH[:TAG|@DIGEST]
                             or a git URL
      --network MODE         RUN network: default (none), none, host
      --allow ENTITLEMENT    Ask for network.host (RUN --network=host) or security.insecure
                             (RUN --security=insecure); the operator must also allow it
      --allow-host-network   Operator: allow host networking on this machine
                             (or BUILDLITE_ALLOW_HOST_NETWORK=1)
      --allow-security-insecure  Operator: allow insecure steps on this machine: all
                             capabilities, no seccomp, every device (or
                             BUILDLITE_ALLOW_SECURITY_INSECURE=1)
      --allow-private-urls   Let ADD <url> reach loopback, private and link-local addresses,
                             refused by default (or BUILDLITE_ALLOW_PRIVATE_URLS=1)
      --http-timeouts SPEC   Stall limits of registry requests and ADD <url> fetches:
                             connect=10s,headers=30s,idle=60s (the defaults; any subset), or
                             BUILDLITE_HTTP_TIMEOUTS; a stall is retried like a reset
      --no-cache             Run every step
      --no-cache-filter STAGE  Run every step of this stage (repeatable)
      --platform LIST        Target platforms, e.g. linux/arm64 or linux/amd64,linux/arm64
                             (default: this machine's); several give an image index; a
                             non-native RUN needs QEMU user emulation (scripts/provision.sh)
      --progress MODE        auto (tty on a terminal, else plain), tty, plain, json
      --iidfile FILE         Write the image digest to FILE
      --metadata-file FILE   Write the result as JSON: digest, pushed refs, cache stats
      --root DIR             State directory (default: $BUILDLITE_ROOT, /var/lib/buildlite as root,
                             else $XDG_DATA_HOME/buildlite); full step logs are in DIR/logs
      --insecure-registry H  Allow plain HTTP to host H (loopback is always allowed)
      --cache-from SPEC      Import cache: type=registry,ref=REF or type=local,src=DIR (repeatable)
      --cache-to SPEC        Export cache: type=registry,ref=REF or type=local,dest=DIR
                             [,mode=min|max][,ignore-error=true]
      --debug-cache          Keep cache-key pre-images to explain misses
      --check                Run the build checks (BuildKit's rules, e.g. JSONArgsRecommended)
                             without building: every stage unless --target; exits 1 when
                             '# check=error=true' (or --build-arg BUILDKIT_DOCKERFILE_CHECK=...) says so
  -q, --quiet                Print only the image digest

Limits of an embedded build (on a build service its operator sets them: a usage error with
--server); the context size limit bounds a context on stdin:
${LIMIT_OPTIONS}

On a build service (the same image as an embedded build; outputs push, caches
are type=registry, and the progress output names the build id):
      --server HOST:PORT     Run the build on this build service (or BUILDLITE_SERVER;
                             an empty value means an embedded build)
      --token T              Bearer token (or BUILDLITE_TOKEN)
      --detach               Submit, print the build id, exit; follow it with
                             'buildlite watch ID'
  Ctrl-C (SIGINT) or SIGTERM cancels the build on the server before the client
  exits (a second one exits at once).

Environment: SOURCE_DATE_EPOCH clamps every timestamp (reproducible images).
Exit codes: 0 built, 1 the build failed (or the server cannot be reached),
2 bad command line, 3 the server refused the token (missing, unknown, or not
allowed what the build asks), 128+N interrupted by signal N (130 for Ctrl-C).`,
  logs: `Usage: buildlite logs --server ADDR [--token T] BUILD STEP

Prints the full log of one step of a build run by a build service. The event
stream caps each step's output; the clip marker in it names this command.
STEP is the step's digest (sha256:...) or a unique prefix of its hex.

${REMOTE_OPTIONS}`,
  ls: `Usage: buildlite ls [--state STATE] [--client NAME] [--limit N] [--format table|json] [-q]

Lists builds of a build service, newest first: yours, or with an admin token
everyone's (--client NAME: one client's).

      --state STATE          queued, running, succeeded, failed or cancelled
                             ("queued (quota)": waiting for its client's concurrency quota)
      --limit N              At most N builds (default 50)
  -q, --quiet                Only the build ids
${REMOTE_OPTIONS}`,
  inspect: `Usage: buildlite inspect [--format text|json] BUILD

Shows one build of a build service: state, client, project, worker, attempts,
when it was queued, started and ended, its image digest or its error, and for
a queued build held back by its client's quota, why it waits.
${REMOTE_OPTIONS}`,
  watch: `Usage: buildlite watch [--from-seq N] [--progress MODE] BUILD   (also: attach)

Follows a build of a build service with the same progress output as build,
from its first event or after event N, to its end. Exit code as build: 0 built,
1 failed. Ctrl-C stops watching; the build goes on.

      --from-seq N           Only events after seq N (as --progress json numbers them)
      --progress MODE        auto, tty, plain, json
${REMOTE_OPTIONS}`,
  cancel: `Usage: buildlite cancel [--no-wait] BUILD...

Cancels builds of a build service: a queued build never starts, a running
one is stopped (its steps are killed, nothing is pushed). Waits up to 15s
for each to end and prints its final state; exit 1 if one is still running.

      --no-wait              Only ask; do not wait for the builds to end
${REMOTE_OPTIONS}`,
  workers: `Usage: buildlite workers [--format table|json]

Lists the workers of a build service: id, host, platform (--format json: every
platform it offers, natively or under QEMU emulation), alive or lost,
builds running / concurrency, the ids of the running builds, cache size,
last heartbeat.
${REMOTE_OPTIONS}`,
  push: `Usage: buildlite push [--root DIR] [--http-timeouts SPEC] REF [DEST_REF]

Pushes an image built earlier with -t REF (to REF, or to DEST_REF).
--http-timeouts (or BUILDLITE_HTTP_TIMEOUTS) as for build.`,
  graph: `Usage: buildlite graph [-f FILE] [--target T] [--build-arg K=V] [--format json|dot|mermaid] CONTEXT`,
  login: `Usage: buildlite login [-u USER] [--password-stdin] REGISTRY`,
  logout: `Usage: buildlite logout REGISTRY`,
  serve: `Usage: buildlite serve --redis URL --tokens FILE [OPTIONS]

Runs the gRPC build API (Submit, Watch, GetLog, Cancel, Get, List, DiskUsage,
Prune, ListWorkers, and grpc.health.v1). Prints "listening on HOST:PORT".

      --listen HOST:PORT     Address to listen on (default 127.0.0.1:7070; port 0 picks one)
      --tokens FILE          Bearer tokens, YAML or JSON: [{token, client, admin?, entitlements?,
                             limits?, quota?}]; limits and quota override --config's for that token
      --token CLIENT=TOKEN   A token on the command line (repeatable; prefer --tokens)
      --config FILE          Service limits and quotas, YAML or JSON (unknown keys stop serve):
                               limits: {step-timeout: 30m, memory: 2GiB, max-context-size: 1GiB, ...}
                               quota: {max-concurrent-builds: 8, max-submissions-per-minute: 60,
                                       over-quota: queue|refuse}
                             Precedence: a worker's own limit (its ceiling) > the token's > the
                             service's (flags > this file) > built-in defaults
      --max-context-size SIZE
                             Largest build context an upload may be (default 2GiB); over it,
                             the upload is refused before anything is stored
      --max-dockerfile-size SIZE
                             Largest Dockerfile a build may send (default 1MiB)
      --embedded-worker      Also run a worker in this process (needed for builds with secrets:
                             their values stay in this process's memory)
      --store-keep-duration D
                             Delete contexts and full step logs unused for longer than D (default
                             7d, at least 10m). Kept regardless: the context of a queued or running
                             build, and the logs of a build still listed. Re-submitting a stored
                             context counts as a use. A registry store loses the tag; run the
                             registry's garbage collection to reclaim the bytes
      --store-gc-interval D  Time between store retention passes (default 1h)
      --allow-url-network CIDR, --allow-private-urls
                             With or without --embedded-worker: the URL policy a URL context
                             (build --server https://host/repo.git#REF) is checked under before
                             it is queued; give the workers the same (they check again)

${SERVICE_OPTIONS}

With --embedded-worker, the worker options apply to it:
${WORKER_OPTIONS}

Limits of the embedded worker: the ceiling of every build it runs (the context and Dockerfile
sizes above are the API's own, per token):
${limitOptions(['maxContextBytes', 'maxDockerfileBytes'])}

SIGTERM drains: no new calls, open streams end, then the process exits.`,
  worker: `Usage: buildlite worker --redis URL [OPTIONS]

Runs a build worker: takes builds from the shared queue and its own queue
(cache locality), streams their events to Redis, stores full step logs.
Prints "worker ID ready".

${WORKER_OPTIONS}

Limits of this worker: the ceiling of every build it runs (what a build asks is cut to them):
${LIMIT_OPTIONS}

${SERVICE_OPTIONS}

SIGTERM drains: running builds finish for up to --drain-seconds, the rest go
back to the queue. A restarted worker first sweeps what a crash left.`,
  version: `Usage: buildlite version`,
  du: `Usage: buildlite du [--root DIR] [--verbose] [--format table|json]

Disk used by blobs, cache records, snapshots, cache mounts, ingests and leases, with last use.
With --server (or BUILDLITE_SERVER): the same, for each worker of the build service.
${REMOTE_OPTIONS}`,
  prune: `Usage: buildlite prune [--root DIR] [--all] [--keep-duration D] [--keep-storage SIZE] [--filter F] [--force]

  -a, --all                  Remove all cache not in use
      --keep-duration D      Remove cache unused for longer than D (e.g. 24h, 7d)
      --keep-storage SIZE    Then remove least recently used cache until usage is at most SIZE (e.g. 10GB)
      --filter F             type=blob|cache-record|snapshot|cache-mount, until=D, id=PREFIX (repeatable, ANDed)
  -f, --force                Do not ask for confirmation (required without a terminal)
  -v, --verbose              List what was removed

With --server (or BUILDLITE_SERVER) and an admin token, every worker of the build
service prunes its cache (--all, --keep-duration, --keep-storage; no --filter).
${REMOTE_OPTIONS}`,
  debug: `Usage: buildlite debug why-miss [--root DIR] [KEY|--last]

Explains why steps missed the cache, from pre-images kept by 'build --debug-cache':
the last such build's steps (default, or --last), or one cache KEY.`,
};

export function usageOf(command: string): string {
  return USAGE[command === 'attach' ? 'watch' : command] ?? USAGE['help']!;
}

export async function run(argv: string[]): Promise<number> {
  const cmd = argv[0];
  if (cmd !== undefined && USAGE[cmd] === undefined && cmd !== 'attach') {
    // Same shape as a UsageError's report; importing usage.js from here would be a cycle.
    process.stderr.write(`buildlite: no help for unknown command "${cmd}"\n\n${usageOf('help')}\n`);
    return 2;
  }
  process.stdout.write(`${usageOf(cmd ?? 'help')}\n`);
  return 0;
}
