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
const load = createRequire(import.meta.url);

export function tlsModule(): typeof import('node:tls') {
  return load('node:tls') as typeof import('node:tls');
}

export function httpsModule(): typeof import('node:https') {
  return load('node:https') as typeof import('node:https');
}

export function childProcessModule(): typeof import('node:child_process') {
  return load('node:child_process') as typeof import('node:child_process');
}

/** `execFile`, promisified: resolves with the output, rejects on a failed run. */
export function execFileAsync(file: string, args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  return promisify(childProcessModule().execFile)(file, args);
}

export function zlibModule(): typeof import('node:zlib') {
  return load('node:zlib') as typeof import('node:zlib');
}

export function readlineModule(): typeof import('node:readline') {
  return load('node:readline') as typeof import('node:readline');
}

export function dnsPromisesModule(): typeof import('node:dns/promises') {
  return load('node:dns/promises') as typeof import('node:dns/promises');
}
