import { UsageError, printUsageError } from './usage.js';

/**
 * Entry point: picks the command and loads only its module, so `--version`
 * and `help` never pay for the builder, gRPC or Redis clients.
 */
const COMMANDS: Record<string, () => Promise<{ run(argv: string[]): Promise<number> }>> = {
  build: () => import('./commands/build.js'),
  push: () => import('./commands/push.js'),
  graph: () => import('./commands/graph.js'),
  login: () => import('./commands/login.js'),
  logout: () => import('./commands/login.js').then((m) => ({ run: m.runLogout })),
  version: () => import('./commands/version.js'),
  serve: () => import('./commands/service.js').then((m) => ({ run: m.runServe })),
  worker: () => import('./commands/service.js').then((m) => ({ run: m.runWorker })),
  help: () => import('./commands/help.js'),
  du: () => import('./commands/du.js'),
  prune: () => import('./commands/prune.js'),
  debug: () => import('./commands/debug.js'),
  logs: () => import('./commands/logs.js'),
  ls: () => import('./commands/ls.js'),
  inspect: () => import('./commands/inspect.js'),
  watch: () => import('./commands/watch.js'),
  attach: () => import('./commands/watch.js'),
  cancel: () => import('./commands/cancel.js'),
  workers: () => import('./commands/workers.js'),
};

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '-h' || cmd === '--help') return (await import('./commands/help.js')).run([]);
  if (cmd === '--version' || cmd === '-v') return (await import('./commands/version.js')).run([]);
  const load = COMMANDS[cmd];
  if (!load) throw new UsageError(`unknown command "${cmd}"`, 'help');
  // `buildlite CMD --help` for every command, without loading the command.
  if (cmd !== 'help' && wantsHelp(rest)) return (await import('./commands/help.js')).run([cmd]);
  // An ordinary user's command that opens a state root runs again inside a user namespace (rootless mode).
  if (process.geteuid?.() !== 0) {
    const userns = await import('./userns-exec.js');
    if (userns.needsUserNamespace(cmd, rest)) return userns.runInUserNamespace(argv);
  }
  return (await load()).run(rest);
}

function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  async (err: unknown) => {
    if (err instanceof UsageError) {
      await printUsageError(err);
      process.exitCode = 2;
      return;
    }
    const { exitCodeOf, formatError } = await import('./errors.js');
    process.stderr.write(`error: ${formatError(err)}\n`);
    process.exitCode = exitCodeOf(err);
  },
);
