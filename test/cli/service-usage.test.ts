import { describe, expect, it } from 'vitest';
import { usageOf } from '../../cli/commands/help.js';
import { COMMON, SERVE_FLAGS } from '../../cli/commands/service.js';
import { runCli } from '../helpers/cli.js';

describe('serve and worker usage texts', () => {
  it.each([
    ['serve', SERVE_FLAGS],
    ['worker', COMMON],
  ] as const)('`%s --help` lists every flag the command takes', async (cmd, flags) => {
    const text = usageOf(cmd);
    for (const name of Object.keys(flags)) if (name !== 'help') expect(text, `--${name}`).toMatch(new RegExp(`--${name}\\b`));
    const r = await runCli([cmd, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(text);
  });

  it('refuses GC tuning without the hard cap, and a bad size, with exit code 2', async () => {
    const noCap = await runCli(['worker', '--redis', 'redis://127.0.0.1:1', '--gc-interval', '10s']);
    expect(noCap.code).toBe(2);
    expect(noCap.stderr).toContain('--gc-keep-storage');
    const bad = await runCli(['worker', '--redis', 'redis://127.0.0.1:1', '--gc-keep-storage', 'lots']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--gc-keep-storage "lots"/);
  });
});
