import { UsageError, printUsageError } from './usage.js';

/** A command's module, loaded only when that command runs. */
export type CommandTable = Readonly<Record<string, () => Promise<{ run(argv: string[]): Promise<number> }>>>;

/**
 * Runs `buildlite CMD ARGS...` with the commands in `commands`: `--help` and
 * `--version` for all of them, the rootless re-exec, and one exit status and
 * error format. The whole CLI (main.ts) and a bundle of one command
 * (main-push.ts) share it.
 */
export function runCli(commands: CommandTable, argv: string[] = process.argv.slice(2)): void {
  main(commands, argv).then(
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
}

async function main(commands: CommandTable, argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '-h' || cmd === '--help') return (await import('./commands/help.js')).run([]);
  if (cmd === '--version' || cmd === '-v') return (await import('./commands/version.js')).run([]);
  const load = Object.hasOwn(commands, cmd) ? commands[cmd] : undefined;
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
