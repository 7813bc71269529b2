/** A build's life: queued (also between retries), running, then one terminal state. */
export type BuildState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const BUILD_STATES: readonly BuildState[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
export const TERMINAL_STATES: ReadonlySet<BuildState> = new Set(['succeeded', 'failed', 'cancelled']);

export function isBuildState(s: string): s is BuildState {
  return (BUILD_STATES as readonly string[]).includes(s);
}
