import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuilderOptions } from '../../builder/index.js';
import { expectRefusedBeforeAnyStep, ranSomething, SecurityEnv } from './harness.js';

const HOST_RUN = `RUN --network=host echo "NETDEV:$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')"`;
// Prints the step's effective capabilities, then tries what only an insecure step may do: mount a tmpfs.
const PROBE = 'grep CapEff /proc/self/status; mkdir -p /probe && mount -t tmpfs probe /probe && echo MOUNTED-TMPFS; true';
const INSECURE_RUN = `RUN --security=insecure sh -c '${PROBE}'`;
/** CAP_SYS_ADMIN's bit in /proc/<pid>/status: not among Docker's default 14 capabilities. */
const SYS_ADMIN = 21n;

function capEff(logs: string): bigint {
  const hex = /CapEff:\s*([0-9a-f]+)/.exec(logs)?.[1];
  if (hex === undefined) throw new Error(`no CapEff line in ${JSON.stringify(logs)}`);
  return BigInt(`0x${hex}`);
}

/** Each option that leaves the sandbox: the build's entitlement, the operator's option, a step that uses it. */
const GRANTS = [
  { entitlement: 'network.host', operator: 'allowHostNetwork', run: HOST_RUN, why: /network/ },
  { entitlement: 'security.insecure', operator: 'allowSecurityInsecure', run: INSECURE_RUN, why: /security=insecure/ },
] as const;

const REFUSALS = GRANTS.flatMap((g) => [
  [`${g.entitlement}: operator allows, build does not ask`, g, true, []],
  [`${g.entitlement}: build asks, operator does not allow`, g, false, [g.entitlement]],
  [`${g.entitlement}: the build asks for the other one`, g, true, GRANTS.filter((o) => o !== g).map((o) => o.entitlement)],
  [`${g.entitlement}: neither`, g, false, []],
] as const);

/** docs/security.md T2: network=host and security=insecure need the operator's grant and the build's request, on every path. */
describe('leaving the sandbox is a two-sided grant, checked before anything runs', () => {
  let env: SecurityEnv;

  beforeAll(async () => {
    env = await SecurityEnv.start();
  });
  afterAll(async () => {
    await env?.stop();
  });

  it.each(REFUSALS)('refused (%s) before any container starts, naming the line', async (_name, g, operator, allow) => {
    const { builder, root } = await env.builder({ [g.operator]: operator } as Omit<BuilderOptions, 'root'>);
    const out = await env.build(builder, `FROM ${env.base}\nRUN echo first-step-ran > /f\n${g.run}\n`, { request: { allow: [...allow] } });
    await expectRefusedBeforeAnyStep(env, root, out, g.why);
    expect(out.error?.range?.startLine).toBe(3);
    expect(out.logs).not.toContain('NETDEV');
  });

  it('with both security.insecure grants the step holds capabilities the sandbox lacks, and no seccomp stops a mount', async () => {
    const { builder } = await env.builder({ allowSecurityInsecure: true });
    const out = await env.build(builder, `FROM ${env.base}\n${INSECURE_RUN}\n`, { request: { allow: ['security.insecure'] } });
    expect(out.error).toBeUndefined();
    expect((capEff(out.logs) >> SYS_ADMIN) & 1n).toBe(1n);
    expect(out.logs).toContain('MOUNTED-TMPFS');
  });

  it('the same builder and grants leave a step without --security=insecure in the sandbox', async () => {
    const { builder } = await env.builder({ allowSecurityInsecure: true });
    const out = await env.build(builder, `FROM ${env.base}\nRUN sh -c '${PROBE}'\n`, { request: { allow: ['security.insecure'] } });
    expect(out.error).toBeUndefined();
    expect((capEff(out.logs) >> SYS_ADMIN) & 1n).toBe(0n);
    expect(out.logs).not.toContain('MOUNTED-TMPFS');
  });

  it('runs with the host network when both sides grant it', async () => {
    const { builder } = await env.builder({ allowHostNetwork: true });
    const out = await env.build(builder, `FROM ${env.base}\n${HOST_RUN}\n`, { request: { allow: ['network.host'] } });
    expect(out.error).toBeUndefined();
    const devs = out.logs.match(/^NETDEV:(.*)$/m)?.[1]?.trim().split(' ') ?? [];
    expect(devs).toContain('lo');
    expect(devs.length).toBeGreaterThan(1); // the host's interfaces, not a fresh namespace
  });

  it('an ONBUILD trigger from a base image goes through the same check', async () => {
    const ref = `${env.registry.host}/sec/onbuild-host:1`;
    const { builder: maker } = await env.builder();
    const made = await env.build(maker, `FROM ${env.base}\nONBUILD ${HOST_RUN}\n`, { request: { outputs: [{ type: 'registry', refs: [ref] }] } });
    expect(made.error).toBeUndefined();

    for (const [operator, allow] of [[true, []], [false, ['network.host']], [false, []]] as const) {
      const { builder, root } = await env.builder({ allowHostNetwork: operator });
      const out = await env.build(builder, `FROM ${ref}\nRUN echo child-ran\n`, { request: { allow: [...allow] } });
      expect(out.error?.code, `operator=${operator} allow=${allow.join()}`).toBe('PERMISSION_DENIED');
      expect(out.logs).not.toContain('NETDEV');
      expect(out.logs).not.toContain('child-ran');
      expect(ranSomething(out)).toBe(false);
      expect(await env.runcContainers(root)).toBe('');
    }

    const { builder } = await env.builder({ allowHostNetwork: true });
    const ok = await env.build(builder, `FROM ${ref}\nRUN echo child-ran\n`, { request: { allow: ['network.host'] } });
    expect(ok.error).toBeUndefined();
    expect(ok.logs).toContain('NETDEV:');
    expect(ok.logs).toContain('child-ran');
  });
});
