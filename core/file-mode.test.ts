import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyFileMode, InvalidFileModeError, parseFileMode } from './file-mode.js';

// [--chmod, start mode, is a directory, expected mode]
const TABLE: Array<[string, number, boolean, number]> = [
  ['755', 0o600, false, 0o755],
  ['0640', 0o777, true, 0o640],
  ['4755', 0o644, false, 0o4755],
  ['u+x', 0o644, false, 0o744],
  ['+x', 0o644, false, 0o755],
  ['a-x', 0o755, false, 0o644],
  ['go-w', 0o666, false, 0o644],
  ['go-w,u=rwx', 0o666, false, 0o744],
  ['u=rwx,g=,o=', 0o644, false, 0o700],
  ['o-rwx,g+x', 0o664, false, 0o670],
  ['u+rw,g+r,o-x,o+w', 0o600, false, 0o642],
  ['u+r-w', 0o600, false, 0o400],
  ['g+rw,o+rw', 0o500, true, 0o566],
  // X: search/execute only for directories and files someone may already execute.
  ['a+X', 0o644, false, 0o644],
  ['a+X', 0o744, false, 0o755],
  ['a+X', 0o500, true, 0o511],
  ['u=rwX,go=rX', 0o500, true, 0o755],
  ['u=rwX,go=rX', 0o600, false, 0o644],
  ['u=rwX,go=rX', 0o700, false, 0o755],
  ['u-X', 0o744, false, 0o644],
  // Copying a class.
  ['g=u', 0o740, false, 0o770],
  ['go=u-w', 0o700, false, 0o755],
  ['o+g', 0o750, false, 0o755],
  ['u-g', 0o770, false, 0o070],
  // Special bits: s for u and g, t for the sticky bit; o alone changes neither.
  ['u+s', 0o755, false, 0o4755],
  ['g+s', 0o755, true, 0o2755],
  ['+s', 0o755, false, 0o6755],
  ['+t', 0o755, true, 0o1755],
  ['o+t', 0o755, true, 0o755],
  ['o+s', 0o755, false, 0o755],
  ['a=r', 0o4755, false, 0o444],
  ['u=rw', 0o4755, false, 0o655],
  ['=', 0o4755, false, 0o0],
  ['=', 0o1777, true, 0o1000],
  ['g-s', 0o2755, true, 0o755],
];

const INVALID = ['', 'u', 'x+u', 'rw', 'u+z', 'u+x,', 'u+x g+w', ',u+x', '9', '0888', '17777', '7u'];

describe('--chmod modes', () => {
  it.each(TABLE)('%s on %o (dir %s) gives %o', (text, start, dir, want) => {
    expect(applyFileMode(parseFileMode(text), start, dir)).toBe(want);
  });

  it.each(INVALID)('%j is refused, naming the value', (text) => {
    expect(() => parseFileMode(text)).toThrow(InvalidFileModeError);
    expect(() => parseFileMode(text)).toThrow(JSON.stringify(text));
  });

  it('octal values stay octal, whatever the file had', () => {
    expect(parseFileMode('0755')).toEqual({ kind: 'octal', mode: 0o755 });
    expect(applyFileMode(parseFileMode('7'), 0o4755, false)).toBe(0o7);
  });
});

/**
 * The same modes through coreutils chmod with an empty umask, an independent
 * implementation of chmod(1). Cases where GNU and BSD differ on purpose (BSD,
 * like BuildKit, lets `-X` act as `-x`, `o+t` change nothing and `=` clear a
 * directory's set-id bits) stay in the table above only.
 */
describe('--chmod agrees with chmod(1)', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bl-chmod-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const portable = TABLE.filter(([text, start, dir]) => !/^[0-7]+$/.test(text) && !/-X|o\+t|^=$/.test(text) && !(dir && start & 0o6000));
  let n = 0;

  it.each(portable)('%s on %o (dir %s)', (text, start, dir) => {
    const p = path.join(tmp, `e${n++}`);
    if (dir) mkdirSync(p);
    else writeFileSync(p, '');
    chmodSync(p, start);
    execFileSync('sh', ['-c', 'umask 0 && chmod "$1" "$2"', 'sh', text, p]);
    expect(applyFileMode(parseFileMode(text), start, dir)).toBe(statSync(p).mode & 0o7777);
  });
});
