/** A bad command line: one line of error, then the command's usage, exit code 2. */
export class UsageError extends Error {
    command;
    constructor(message, command) {
        super(message);
        this.command = command;
    }
}
export async function printUsageError(err) {
    const { usageOf } = await import('./commands/help.js');
    process.stderr.write(`buildlite: ${err.message}\n\n${usageOf(err.command)}\n`);
}
//# sourceMappingURL=usage.js.map