/** A bad command line: one line of error, then the command's usage, exit code 2. */
export class UsageError extends Error {
  constructor(message: string, readonly command: string) {
    super(message);
  }
}

export async function printUsageError(err: UsageError): Promise<void> {
  const { usageOf } = await import('./commands/help.js');
  process.stderr.write(`buildlite: ${err.message}\n\n${usageOf(err.command)}\n`);
}
