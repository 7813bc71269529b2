import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

/** The command line alone: no registry, no build. Every bad line is one error line, the usage, exit 2. */
describe('buildlite command line', () => {
  let tmp: string;
  let ctx: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'bl-usage-'));
    ctx = tmp;
    await writeFile(path.join(ctx, 'Dockerfile'), 'FROM scratch\n');
  });
  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('--version and version print the version', async () => {
    for (const args of [['--version'], ['version'], ['-v']]) {
      const r = await runCli(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^buildlite \d+\.\d+\.\d+/);
    }
  });

  it('help exists for each command, as `help CMD` and as `CMD --help`', async () => {
    for (const cmd of ['build', 'push', 'graph', 'login', 'logout', 'serve', 'worker', 'version', 'ls', 'inspect', 'watch', 'cancel', 'workers', 'logs', 'du', 'prune']) {
      const a = await runCli(['help', cmd]);
      const b = await runCli([cmd, '--help']);
      expect(a.code, cmd).toBe(0);
      expect(a.stdout).toContain(`Usage: buildlite ${cmd}`);
      expect(b.code, cmd).toBe(0);
      expect(b.stdout).toBe(a.stdout);
    }
    const top = await runCli([]);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('Commands:');
    const build = await runCli(['help', 'build']);
    for (const flag of ['--file', '--tag', '--build-arg', '--target', '--push', '--output', '--no-cache', '--no-cache-filter', '--secret', '--network', '--allow', '--label', '--platform', '--progress', '--iidfile', '--metadata-file', '--root', '--insecure-registry', '--quiet', 'type=tar', '--server', '--token', '--detach', 'BUILDLITE_SERVER', 'BUILDLITE_TOKEN', '130', '--allow-private-urls', 'BUILDLITE_ALLOW_PRIVATE_URLS', '--http-timeouts', 'BUILDLITE_HTTP_TIMEOUTS', 'connect=10s,headers=30s,idle=60s']) {
      expect(build.stdout, flag).toContain(flag);
    }
    // Each command that talks to a server documents the exit code of a refused token.
    for (const cmd of ['build', 'logs', 'ls', 'inspect', 'watch', 'cancel', 'workers']) expect((await runCli(['help', cmd])).stdout, cmd).toMatch(/3 the server refused the token/);
    const worker = await runCli(['help', 'worker']);
    for (const flag of ['--allow-url-network', '--allow-private-urls', '--http-timeouts']) expect(worker.stdout, flag).toContain(flag);
  });

  const bad: [string, string[], RegExp][] = [
    ['unknown flag', ['build', '--frobnicate', 'CTX'], /Unknown option '--frobnicate'/],
    ['unknown command', ['frobnicate'], /unknown command "frobnicate"/],
    ['help for an unknown command', ['help', 'frobnicate'], /unknown command "frobnicate"/],
    ['no context', ['build'], /exactly one CONTEXT/],
    ['two contexts', ['build', 'CTX', 'CTX'], /one CONTEXT, got 2/],
    ['missing flag value', ['build', 'CTX', '-t'], /-t.*argument missing|Option '-t/],
    ['bad --progress', ['build', '--progress', 'fancy', 'CTX'], /--progress "fancy"/],
    ['bad --network', ['build', '--network', 'bridge', 'CTX'], /network "bridge": want default, none or host/],
    ['bad --allow', ['build', '--allow', 'device', 'CTX'], /allow "device": the entitlements are network.host and security.insecure/],
    ['a platform that is not Linux', ['build', '--platform', 'linux/amd64,windows/amd64', 'CTX'], /--platform: platform windows\/amd64 is not supported: buildlite builds Linux images/],
    ['an unknown architecture', ['build', '--platform', 'linux/sparc', 'CTX'], /--platform: platform linux\/sparc is not supported: the architectures are amd64, arm64/],
    ['malformed platform', ['build', '--platform', 'linux/', 'CTX'], /--platform: invalid platform "linux\/": want OS\/ARCH/],
    ['empty entry in a platform list', ['build', '--platform', 'linux/amd64,', 'CTX'], /an empty entry/],
    ['bad output type', ['build', '--output', 'type=docker', 'CTX'], /type must be registry, oci, local or tar/],
    ['output without dest', ['build', '--output', 'type=oci', 'CTX'], /type=oci needs dest=PATH/],
    ['stdout for a non-tar output', ['build', '--output', 'type=oci,dest=-', 'CTX'], /only for type=tar/],
    ['stdout tar with json progress', ['build', '--output', 'type=tar,dest=-', '--progress', 'json', 'CTX'], /cannot be combined/],
    ['--push without a tag', ['build', '--push', 'CTX'], /--push needs at least one -t/],
    ['secret without id', ['build', '--secret', 'src=/etc/hostname', 'CTX'], /id= is required/],
    ['secret from an unset variable', ['build', '--secret', 'id=tok,env=BL_SURELY_UNSET_VAR', 'CTX'], /BL_SURELY_UNSET_VAR is not set/],
    ['label without =', ['build', '--label', 'novalue', 'CTX'], /--label "novalue": want KEY=VALUE/],
    ['empty build-arg name', ['build', '--build-arg', '=x', 'CTX'], /empty name/],
    ['missing Dockerfile', ['build', '-f', 'nope.Dockerfile', 'CTX'], /cannot read Dockerfile/],
    ['--detach of an embedded build', ['build', '--detach', 'CTX'], /--detach leaves a build running on a build service: it needs --server/],
    ['ls without a server', ['ls'], /ls talks to a build service: --server HOST:PORT \(or BUILDLITE_SERVER\)/],
    ['ls with a bad state', ['ls', '--server', '127.0.0.1:1', '--token', 'x', '--state', 'done'], /--state "done": want queued, running/],
    ['watch without a token', ['watch', '--server', '127.0.0.1:1', '0000'], /a token is required/],
    ['watch without a build', ['watch', '--server', '127.0.0.1:1', '--token', 'x'], /watch takes one BUILD id/],
    ['cancel without a build', ['cancel', '--server', '127.0.0.1:1', '--token', 'x'], /one or more BUILD ids/],
    ['remote prune with a filter', ['prune', '--server', '127.0.0.1:1', '--token', 'x', '--force', '--filter', 'type=blob'], /--filter is for a local cache/],
    ['remote output to a directory', ['build', '--server', '127.0.0.1:1', '--token', 'x', '-o', 'type=local,dest=out', 'CTX'], /writes on the server's machine/],
    ['--http-timeouts with an unknown phase', ['build', '--http-timeouts', 'read=1s', 'CTX'], /--http-timeouts "read=1s": unknown timeout "read"/],
    ['--http-timeouts with a bad duration', ['build', '--http-timeouts', 'headers=soon', 'CTX'], /not a duration/],
    ['--http-timeouts out of bounds', ['build', '--http-timeouts', 'connect=5s,headers=10ms', 'CTX'], /headers timeout must be a whole number of ms in \[100, 3600000\]/],
    ['--allow-private-urls for a build service', ['build', '--server', '127.0.0.1:1', '--token', 'x', '--allow-private-urls', 'CTX'], /the operator allows it \(buildlite worker --allow-private-urls\)/],
    ['--http-timeouts for a build service', ['build', '--server', '127.0.0.1:1', '--token', 'x', '--http-timeouts', 'headers=5s', 'CTX'], /the operator sets it/],
    ['a tag with credentials', ['build', '-t', 'u:p4ss-w0rd@reg.example.com/x', 'CTX'], /-t: invalid image reference "\*\*\*@reg\.example\.com\/x": it carries credentials .* buildlite login reg\.example\.com$/],
    ['a malformed tag', ['build', '-t', 'reg.example.com/UPPER', 'CTX'], /-t: invalid image reference .*lowercase/],
    // Refused before the context is packed or the (unreachable) service is called.
    ['a malformed tag for a build service', ['build', '--server', '127.0.0.1:1', '--token', 'x', '-t', 'reg.example.com/UPPER', 'CTX'], /-t: invalid image reference .*lowercase/],
    ['a malformed cache ref', ['build', '--cache-from', 'type=registry,ref=a//b', 'CTX'], /--cache-from ref: invalid image reference/],
    ['a worker with a bad --allow-url-network', ['worker', '--redis', 'redis://127.0.0.1:1', '--allow-url-network', 'not-a-net'], /--allow-url-network: .*"not-a-net" is not an address or CIDR/],
    ['a worker with a bad --http-timeouts', ['worker', '--redis', 'redis://127.0.0.1:1', '--http-timeouts', 'idle=0s'], /idle timeout must be/],
    ['push to a reference with credentials', ['push', 'x:1', 'u:p4ss-w0rd@reg.example.com/x:1'], /DEST_REF: .*carries credentials/],
    ['remote cache in a directory', ['build', '--server', '127.0.0.1:1', '--token', 'x', '--cache-to', 'type=local,dest=c', 'CTX'], /would be on the server's machine/],
  ];
  it.each(bad)('%s: one error line, the usage, exit 2', async (_name, args, want) => {
    const r = await runCli(args.map((a) => (a === 'CTX' ? ctx : a)));
    expect(r.code).toBe(2);
    const [first, second] = r.stderr.split('\n');
    expect(first).toMatch(/^buildlite: /);
    expect(first).toMatch(want);
    expect(second).toBe('');
    expect(r.stderr).toContain('Usage: buildlite');
    expect(r.stdout).toBe('');
  });

  it('a bad SOURCE_DATE_EPOCH is a usage error', async () => {
    const r = await runCli(['build', ctx], { env: { SOURCE_DATE_EPOCH: 'yesterday' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/SOURCE_DATE_EPOCH "yesterday"/);
  });
});
