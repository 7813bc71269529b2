import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StepLogFile } from './log-file.js';

describe('StepLogFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'bl-logfile-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** `total` bytes, numbered lines, written in chunks of `chunk`. */
  function text(total: number): Buffer {
    let s = '';
    for (let i = 0; s.length < total; i++) s += `line ${i}\n`;
    return Buffer.from(s.slice(0, total));
  }

  it('keeps a log under its limit whole, with no notice', async () => {
    const f = new StepLogFile(path.join(dir, 'small', 'a.log'), 1000);
    const data = text(900);
    for (let i = 0; i < data.length; i += 64) expect(f.write(data.subarray(i, i + 64))).toBe(false);
    f.close();
    expect(await readFile(path.join(dir, 'small', 'a.log'))).toEqual(data);
    expect(await readdir(path.join(dir, 'small'))).toEqual(['a.log']);
  });

  it('past its limit keeps the first half and the last part, says how many bytes it dropped, and leaves no segment', async () => {
    const file = path.join(dir, 'big', 'b.log');
    const f = new StepLogFile(file, 1000);
    const data = text(10_000);
    const firstDrops: boolean[] = [];
    for (let i = 0; i < data.length; i += 70) firstDrops.push(f.write(data.subarray(i, i + 70)));
    expect(firstDrops.filter(Boolean)).toHaveLength(1);
    const dropped = f.droppedBytes;
    f.close();
    const got = await readFile(file, 'utf8');
    const notice = `\n[... ${dropped} bytes dropped here: this step printed more than the step log limit of 1000 B; its first and last parts are kept ...]\n`;
    const at = got.indexOf(notice);
    expect(at).toBe(500);
    const head = got.slice(0, at);
    const tail = got.slice(at + notice.length);
    expect(head).toBe(data.subarray(0, 500).toString());
    expect(tail).toBe(data.subarray(data.length - tail.length).toString());
    // What is kept and what was dropped add up to what was written; the tail is a quarter to a half of the limit.
    expect(head.length + dropped + tail.length).toBe(data.length);
    expect(tail.length).toBeGreaterThanOrEqual(250);
    expect(tail.length).toBeLessThanOrEqual(500);
    expect(await readdir(path.join(dir, 'big'))).toEqual(['b.log']);
  });
});
