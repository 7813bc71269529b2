import { createRequire } from 'node:module';
import { promisify } from 'node:util';

/**
 * Node built-ins that some starts need and others do not, loaded on first use.
 * A static import loads a built-in (and what it pulls in) at every start of
 * every command that bundles the importer; `import()` would go through the
 * ESM loader, which the bin's vm.Script has no callback for. Type-only
 * imports elsewhere keep their types.
 *
 * - node:tls and node:https, with OpenSSL's set-up behind them: ~10 ms. A
 *   build or push against a plain-HTTP registry (a loopback one in CI, say)
 *   never opens a TLS connection.
 * - node:child_process, which pulls in parts of net and dgram: ~3 ms. A push
 *   starts a process only for a configured credential helper, and a build
 *   whose every step is cached starts none.
 * - node:zlib (~2 ms), node:readline (~0.5 ms) and node:dns/promises
 *   (~0.9 ms): layers, host-command output and ADD <url>, none of which a
 *   cached build touches.
 */
interface Builtins {
  'node:tls': typeof import('node:tls');
  'node:https': typeof import('node:https');
  'node:child_process': typeof import('node:child_process');
  'node:zlib': typeof import('node:zlib');
  'node:readline': typeof import('node:readline');
  'node:dns/promises': typeof import('node:dns/promises');
}

const load = createRequire(import.meta.url);
/** Kept here: gzip's crc32 asks for node:zlib per chunk, and a plain property read is cheaper than require(). */
const loaded: Partial<Builtins> = {};

/** The built-in `name`, loaded by its first caller. */
export function builtin<K extends keyof Builtins>(name: K): Builtins[K] {
  return (loaded[name] ??= load(name) as Builtins[K]) as Builtins[K];
}

/** `execFile`, promisified: resolves with the output, rejects on a failed run. */
export function execFileAsync(file: string, args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  return promisify(builtin('node:child_process').execFile)(file, args);
}
