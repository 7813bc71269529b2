/**
 * The content hash of the CLI bundle this process runs, which the bin
 * (cli/boot.ts) sets before running it; undefined when the CLI runs from
 * sources (tests). The builder keys what it keeps of the code's own work
 * (Dockerfile parses) by it.
 */
export const CODE_ID_KEY = Symbol.for('buildlite.codeId');

export function codeId(): string | undefined {
  const id = (globalThis as Record<symbol, unknown>)[CODE_ID_KEY];
  return typeof id === 'string' ? id : undefined;
}
