import { describe, expect, it } from 'vitest';
import type { WorkerRecord } from '../worker/records.js';
import { routeByPlatform } from './platform-routing.js';

const w = (id: string, platforms: string[], active = 0, concurrency = 1): WorkerRecord => ({
  id, host: 'h', pid: 1, concurrency, active, startedAt: 0, lastSeen: 0, platform: platforms[0] ?? '', platforms,
});

describe('routeByPlatform', () => {
  const amd = w('amd', ['linux/amd64']);
  const emu = w('emu', ['linux/amd64', 'linux/arm64', 'linux/arm/v7']);
  const arm = w('arm', ['linux/arm64', 'linux/amd64']);

  it('what every live worker offers goes to the shared queue (as does a build with no platform, or no live worker)', () => {
    expect(routeByPlatform([amd, emu], ['linux/amd64'])).toEqual({ kind: 'any' });
    expect(routeByPlatform([amd, emu], [])).toEqual({ kind: 'any' });
    expect(routeByPlatform([], ['linux/arm64'])).toEqual({ kind: 'any' });
  });

  it('what only some offer goes to one of them', () => {
    expect(routeByPlatform([amd, emu], ['linux/arm64'])).toEqual({ kind: 'worker', id: 'emu' });
    expect(routeByPlatform([amd, emu], ['linux/amd64', 'linux/arm64'])).toEqual({ kind: 'worker', id: 'emu' });
  });

  it('prefers the worker that runs the platform natively, then a free one, then the project\'s', () => {
    expect(routeByPlatform([amd, emu, arm], ['linux/arm64'])).toEqual({ kind: 'worker', id: 'arm' });
    const busyArm = w('arm', ['linux/arm64', 'linux/amd64'], 1, 1);
    const emu2 = w('emu2', ['linux/amd64', 'linux/arm64']);
    expect(routeByPlatform([amd, emu, emu2], ['linux/arm64'], 'emu2')).toEqual({ kind: 'worker', id: 'emu2' });
    expect(routeByPlatform([amd, busyArm, emu], ['linux/arm/v7'])).toEqual({ kind: 'worker', id: 'emu' });
  });

  it('refuses what no live worker offers, naming what they do', () => {
    expect(() => routeByPlatform([amd, emu], ['linux/riscv64'])).toThrow('no live worker builds linux/riscv64: the workers offer linux/amd64, linux/arm/v7, linux/arm64');
  });
});
