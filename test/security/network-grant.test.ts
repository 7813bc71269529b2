import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder } from '../../core/mounter.js';
import { SecurityEnv, type BuildOutcome } from './harness.js';

const HOST_RUN = `RUN --network=host echo "NETDEV:$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')"`;

/** Did any RUN step get as far as a container: output, or a completed RUN. */
function ranSomething(out: BuildOutcome): boolean {
  return out.logs.length > 0 || out.events.some((e) => e.type === 'vertex' && e.state === 'completed' && /RUN/.test(e.name));
}

/** THREATS.md 2: network=host needs the operator's grant and the build's request, on every path. */
describe('network=host is a two-sided grant, checked before anything runs', () => {
  let env: SecurityEnv;

  beforeAll(async () => {
    env = await SecurityEnv.start();
  });
  afterAll(async () => {
    await env?.stop();
  });

  it.each([
    ['operator allows, build does not ask', true, []],
    ['build asks, operator does not allow', false, ['network.host']],
    ['neither', false, []],
  ] as const)('refused when %s, before any container starts', async (_name, operator, allow) => {
    const { builder, root } = await env.builder({ allowHostNetwork: operator });
    const out = await env.build(builder, `FROM ${env.base}\nRUN echo first-step-ran > /f\n${HOST_RUN}\n`, { request: { allow: [...allow] } });
    expect(out.error?.code).toBe('PERMISSION_DENIED');
    expect(out.error?.message).toMatch(/network/);
    expect(out.logs).not.toContain('NETDEV');
    expect(ranSomething(out)).toBe(false);
    expect(await mountsUnder(root)).toEqual([]);
    expect(await env.runcContainers(root)).toBe('');
  });

  it('names the line when the operator refuses', async () => {
    const { builder } = await env.builder({ allowHostNetwork: false });
    const out = await env.build(builder, `FROM ${env.base}\nRUN echo first-step-ran > /f\n${HOST_RUN}\n`, { request: { allow: ['network.host'] } });
    expect(out.error?.range?.startLine).toBe(3);
  });

  it('names the line when the build did not ask', async () => {
    const { builder } = await env.builder({ allowHostNetwork: true });
    const out = await env.build(builder, `FROM ${env.base}\nRUN echo first-step-ran > /f\n${HOST_RUN}\n`);
    expect(out.error?.range?.startLine).toBe(3);
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
