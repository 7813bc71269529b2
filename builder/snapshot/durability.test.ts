import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { currentBootId, mayBeLost, SyncedMarks } from './durability.js';

const A = '11111111-2222-3333-4444-555555555555';
const B = '66666666-7777-8888-9999-000000000000';

describe('snapshot durability', () => {
  const tmp = mkdtemp(path.join(os.tmpdir(), 'durability-'));
  afterAll(async () => rm(await tmp, { recursive: true, force: true }));

  it('reads this boot from the kernel', () => {
    expect(currentBootId()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it('counts a commit lost only when it is of an earlier boot and past what that boot synced', () => {
    expect(mayBeLost(undefined, B, {})).toBe(false);
    expect(mayBeLost({ boot: B, mono: '5' }, B, {})).toBe(false);
    expect(mayBeLost({ boot: A, mono: '5' }, B, {})).toBe(true);
    expect(mayBeLost({ boot: A, mono: '5' }, B, { [A]: '5' })).toBe(false);
    expect(mayBeLost({ boot: A, mono: '6' }, B, { [A]: '5' })).toBe(true);
    // Another boot's mark says nothing about this one.
    expect(mayBeLost({ boot: A, mono: '1' }, B, { [B]: '9' })).toBe(true);
    // Beyond 2^53: compared as integers, not as doubles.
    expect(mayBeLost({ boot: A, mono: '9007199254740993' }, B, { [A]: '9007199254740992' })).toBe(true);
  });

  it('keeps the highest mark per boot, and reads a torn file as nothing synced', async () => {
    const file = path.join(await tmp, 'synced.json');
    const marks = new SyncedMarks(file);
    expect(marks.read()).toEqual({});
    await marks.advance(A, 10n);
    await marks.advance(A, 7n);
    expect(marks.read()).toEqual({ [A]: '10' });
    await marks.advance(B, 3n);
    expect(marks.read()).toEqual({ [A]: '10', [B]: '3' });
    await writeFile(file, '{"' + B);
    expect(marks.read()).toEqual({});
    await writeFile(file, JSON.stringify({ [B]: 'x', 'not-a-boot': '1', [A]: '2' }));
    expect(marks.read()).toEqual({ [A]: '2' });
    expect(JSON.parse(await readFile(file, 'utf8'))).toHaveProperty('not-a-boot');
  });
});
