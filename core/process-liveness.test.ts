import { afterEach, describe, expect, it } from 'vitest';
import { Freezer } from '../test/helpers/freezer.js';
import { stateOf, TestProcs } from '../test/helpers/procs.js';
import { hasPendingKill, livenessOf, ownerLiveness, ownerTag, parseProcStat, processLiveness, processStartTime, waitWhileDying } from './process-liveness.js';

const procs = new TestProcs();
afterEach(() => procs.killAll());

describe('liveness rules on /proc text', () => {
  // Field 2 may hold spaces and ')' : the parser counts from the last ')'.
  const stat = (state: string, flags: number, start: string) =>
    `4242 (we ird) name)) ${state} 1 4242 4242 0 -1 ${flags} 0 0 0 0 0 0 0 0 20 0 1 0 ${start} 2322432 332 18446744073709551615 0 0`;
  const status = (sigpnd: string, shdpnd: string) => `Name:\tsleep\nState:\tS (sleeping)\nSigPnd:\t${sigpnd}\nShdPnd:\t${shdpnd}\nSigBlk:\t0000000000000000\n`;

  it('parses state, flags and start time past a command name with spaces and parentheses', () => {
    expect(parseProcStat(stat('S', 4194560, '73157'))).toEqual({ state: 'S', flags: 4194560, startTime: '73157' });
    expect(parseProcStat('garbage')).toBeUndefined();
  });

  it.each([
    ['a running process', stat('S', 4194560, '100'), '100', status('0000000000000000', '0000000000000000'), 'live'],
    ['another start time (a recycled pid)', stat('S', 4194560, '101'), '100', status('0000000000000000', '0000000000000000'), 'gone'],
    ['no such process', undefined, '100', undefined, 'gone'],
    ['a zombie', stat('Z', 4194564, '100'), '100', undefined, 'gone'],
    ['a dead task', stat('X', 4194564, '100'), '100', undefined, 'gone'],
    ['an exiting task (PF_EXITING)', stat('R', 4194564, '100'), '100', status('0000000000000000', '0000000000000000'), 'dying'],
    ['SIGKILL pending for the process', stat('D', 4194368, '100'), '100', status('0000000000000000', '0000000000000100'), 'dying'],
    ['SIGKILL pending for the main thread', stat('D', 4194368, '100'), '100', status('0000000000000100', '0000000000000000'), 'dying'],
    ['other signals pending', stat('S', 4194368, '100'), '100', status('0000000000004002', '0000000000000000'), 'live'],
  ] as const)('%s', (_, statText, start, statusText, want) => {
    const parsed = statText === undefined ? undefined : parseProcStat(statText);
    expect(livenessOf(parsed, start, statusText)).toBe(want);
  });

  it('reads SIGKILL from either pending mask', () => {
    expect(hasPendingKill(status('0000000000000100', '0'))).toBe(true);
    expect(hasPendingKill(status('0', '0000000000000300'))).toBe(true);
    expect(hasPendingKill(status('0000000000000200', '0000000000000000'))).toBe(false);
  });
});

describe('liveness of real processes', () => {
  it('a live process is live, under its tag too', async () => {
    const c = await procs.sleeper();
    expect(processLiveness(c.pid!, processStartTime(c.pid!)!)).toBe('live');
    expect(ownerLiveness(ownerTag(c.pid!))).toBe('live');
    expect(ownerLiveness(ownerTag())).toBe('live');
  });

  it('a recycled pid (the same pid with another start time) is not live', async () => {
    const c = await procs.sleeper();
    const start = Number(processStartTime(c.pid!));
    expect(processLiveness(c.pid!, String(start + 1))).toBe('gone');
    expect(ownerLiveness(`${c.pid}-${start - 1}`)).toBe('gone');
    expect(ownerLiveness('not-a-tag')).toBe('gone');
  });

  it('a zombie is not live', async () => {
    const pid = await procs.zombie();
    const start = processStartTime(pid)!;
    expect(start).toBeDefined();
    expect(processLiveness(pid, start)).toBe('gone');
    expect(stateOf(pid)).toBe('Z');
  });

  it('a process with SIGKILL pending is dying, not live, and waitWhileDying sees it gone once it can die', async () => {
    await using freezer = await Freezer.create();
    const c = await procs.sleeper();
    const exited = new Promise((r) => c.once('exit', r));
    const start = processStartTime(c.pid!)!;
    await freezer.add(c.pid!);
    await freezer.freeze();
    c.kill('SIGKILL');
    // Frozen, it cannot act on the signal: still in /proc with the same start time.
    expect(processStartTime(c.pid!)).toBe(start);
    expect(processLiveness(c.pid!, start)).toBe('dying');
    expect(await waitWhileDying(c.pid!, start, 100)).toBe('dying');
    await freezer.thaw();
    expect(await waitWhileDying(c.pid!, start, 10_000)).toBe('gone');
    await exited;
  });
});
