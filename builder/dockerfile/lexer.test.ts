import { describe, expect, it } from 'vitest';
import { DockerfileError } from './errors.js';
import { mapLookup, parseWords, processWord, processWords } from './lexer.js';

const env = mapLookup({
  a: 'A', b: 'B c', empty: '', PWD: '/home', dollar: '$x', q: '"q"', x: 'X', _u: 'U', n1: 'N', 'é': 'E',
  s: 'foobarbaz', v: '1.2.3', g: '*x*', p: '/a/b/file.tar.gz',
});

// [input, expected] for processWord with the env above; BuildKit's envVarTest in spirit, rows written by us.
const WORD: Array<[string, string]> = [
  ['', ''],
  ['hello', 'hello'],
  ['he llo', 'he llo'],
  ['$a', 'A'],
  ['${a}', 'A'],
  ['$a$a', 'AA'],
  ['${a}${a}', 'AA'],
  ['x$a', 'xA'],
  ['$a-x', 'A-x'],
  ['$a.x', 'A.x'],
  ['$a/x', 'A/x'],
  ['${a}x', 'Ax'],
  ['$ax', ''],
  ['$unset', ''],
  ['${unset}', ''],
  ['$', '$'],
  ['$ ', '$ '],
  ['a$', 'a$'],
  ['$/', '$/'],
  ['$.', '$.'],
  ['$_u', 'U'],
  ['$n1', 'N'],
  ['$1', ''],
  ['$12x', 'x'],
  ['$é', 'E'],
  ['$b', 'B c'],
  ['$empty', ''],
  ['${empty}', ''],
  ['$dollar', '$x'],
  ['$q', '"q"'],
  ['\\$a', '$a'],
  ['\\${a}', '${a}'],
  ['\\\\$a', '\\A'],
  ['\\a', 'a'],
  ['a\\', 'a'],
  ['\\ ', ' '],
  ['a\\ b', 'a b'],
  ["'$a'", '$a'],
  ["'${a}'", '${a}'],
  ["'\\$a'", '\\$a'],
  ["'a b'", 'a b'],
  ["'\"'", '"'],
  ['"$a"', 'A'],
  ['"${a}"', 'A'],
  ['"\\$a"', '$a'],
  ['"\\a"', '\\a'],
  ['"\\\\"', '\\'],
  ['"\\""', '"'],
  ['"a b"', 'a b'],
  ['"\'"', "'"],
  ['"\'$a\'"', "'A'"],
  ['x"$a"y', 'xAy'],
  ["x'$a'y", 'x$ay'],
  ['""', ''],
  ["''", ''],
  ['"$b"', 'B c'],
  ['${a:-w}', 'A'],
  ['${unset:-w}', 'w'],
  ['${empty:-w}', 'w'],
  ['${a-w}', 'A'],
  ['${unset-w}', 'w'],
  ['${empty-w}', ''],
  ['${a:+w}', 'w'],
  ['${unset:+w}', ''],
  ['${empty:+w}', ''],
  ['${a+w}', 'w'],
  ['${unset+w}', ''],
  ['${empty+w}', 'w'],
  // The pattern forms, with the reference's examples: shortest and longest prefix and suffix, first and every match.
  ['${s#f*b}', 'arbaz'],
  ['${s##f*b}', 'az'],
  ['${s%b*}', 'foobar'],
  ['${s%%b*}', 'foo'],
  ['${s/ba/fo}', 'fooforbaz'],
  ['${s//ba/fo}', 'fooforfoz'],
  ['${s#?o}', 'obarbaz'],
  ['${s#x*}', 'foobarbaz'],
  ['${s%.*}', 'foobarbaz'],
  ['${v%.*}', '1.2'],
  ['${v%%.*}', '1'],
  ['${v//./-}', '1-2-3'],
  ['${g/\\*/star}', 'starx*'],
  ['${p##*/}', 'file.tar.gz'],
  ['${unset#x}', ''],
  ['${s/b*/$a}', 'fooA'],
  ['${unset:-$a}', 'A'],
  ['${unset:-${a}}', 'A'],
  ['${unset:-${unset:-deep}}', 'deep'],
  ['${a:+$x}', 'X'],
  ['${a:+${x}y}', 'Xy'],
  ['${unset:-a b}', 'a b'],
  ['${unset:-}', ''],
  ['${a:-}', 'A'],
  ['${a:+}', ''],
  ['${unset:-"q w"}', 'q w'],
  ["${unset:-'q w'}", 'q w'],
  ['${unset:-\\}}', '}'],
  ['"${unset:-w}"', 'w'],
  ['"${a:+w}"', 'w'],
  ['${a?}', 'A'],
  ['${a:?msg}', 'A'],
  ['pre${a}post', 'preApost'],
  ['${a}${unset}${x}', 'AX'],
  ['$a$unset$x', 'AX'],
  ['${PWD}/bin', '/home/bin'],
  ['$PWD/bin', '/home/bin'],
  ['~/$a', '~/A'],
  ['a=$a', 'a=A'],
  ['$a=$x', 'A=X'],
  ['#$a', '#A'],
  ['$$', ''],
  ['$@', ''],
  ['$*', ''],
  ['$#', ''],
  ['$?', ''],
  ['$!', ''],
  ['$0', ''],
  ['é$a', 'éA'],
  ['日本$a語', '日本'], // 語 is a letter, so the name is "a語"
  ['日本${a}語', '日本A語'],
];

describe('processWord', () => {
  it.each(WORD)('%j → %j', (input, want) => {
    expect(processWord(input, env)).toBe(want);
  });
});

// Every expansion form × every variable state × a few words, computed from the rules rather than typed out.
const STATES: Array<[string, string | undefined]> = [
  ['set', 'V'],
  ['empty', ''],
  ['unset', undefined],
];
const FORMS: Array<[string, (v: string | undefined, w: string) => string]> = [
  ['${v:-W}', (v, w) => (v === undefined || v === '' ? w : v)],
  ['${v-W}', (v, w) => (v === undefined ? w : v)],
  ['${v:+W}', (v, w) => (v !== undefined && v !== '' ? w : '')],
  ['${v+W}', (v, w) => (v !== undefined ? w : '')],
  ['${v}', (v) => v ?? ''],
  ['$v', (v) => v ?? ''],
  ['"${v:-W}"', (v, w) => (v === undefined || v === '' ? w : v)],
  ['"${v+W}"', (v, w) => (v !== undefined ? w : '')],
];
const WORDS = ['w', 'two words', 'x/y', '', 'a-b', 'é'];
const GENERATED = STATES.flatMap(([state, value]) =>
  FORMS.flatMap(([form, fn]) => WORDS.map((w) => [state, form.replace('W', w), value, fn(value, w)] as const)),
);

describe('expansion forms (generated)', () => {
  it.each(GENERATED)('%s: %s', (_state, input, value, want) => {
    const lookup = (n: string) => (n === 'v' ? value : undefined);
    expect(processWord(input, lookup)).toBe(want);
  });
});

describe('processWord with a backtick escape', () => {
  it.each([
    ['`$a', '$a'],
    ['\\$a', '\\A'],
    ['C:\\path', 'C:\\path'],
    ['"C:\\path"', 'C:\\path'],
    ['"`""', '"'],
    ['a` b', 'a b'],
  ])('%j → %j', (input, want) => {
    expect(processWord(input, env, { escape: '`' })).toBe(want);
  });
});

describe('raw quotes and escapes (heredoc bodies)', () => {
  it.each([
    ['"$a"', '"A"'],
    ["'$a'", "'$a'"],
    ['\\$a', '\\$a'],
    ['x\\ny', 'x\\ny'],
    ['key=$a\n', 'key=A\n'],
  ])('%j → %j', (input, want) => {
    expect(processWord(input, env, { rawQuotes: true, rawEscapes: true })).toBe(want);
  });
});

describe('processWords splits unquoted expansions', () => {
  it.each([
    ['a b', ['a', 'b']],
    ['  a   b  ', ['a', 'b']],
    ['$b', ['B', 'c']],
    ['"$b"', ['B c']],
    ["'$b'", ['$b']],
    ['x$b', ['xB', 'c']],
    ['$a $x', ['A', 'X']],
    ['80 ${port:-8080}/tcp', ['80', '8080/tcp']],
    ['$empty', []],
    ['""', []],
    ['a\\ b', ['a b']],
    ['', []],
  ] as Array<[string, string[]]>)('%j → %j', (input, want) => {
    expect(processWords(input, env)).toEqual(want);
  });
});

describe('lexer errors are DockerfileErrors', () => {
  it.each([
    "'unterminated",
    '"unterminated',
    '${a',
    '${',
    '${}',
    '${:-x}',
    '${a:x}',
    '${a:%x}',
    '${a:#x}',
    '${a/x',
    '${unset:?is required}',
    '${unset?}',
    '${empty:?}',
    '${a:-${b}',
  ])('%j', (input) => {
    expect(() => processWord(input, env)).toThrow(DockerfileError);
  });
});

describe('parseWords keeps quotes and escapes', () => {
  it.each([
    ['a b', ['a', 'b']],
    ['a=1 b="x y"', ['a=1', 'b="x y"']],
    ["a='x y' c", ["a='x y'", 'c']],
    ['a=x\\ y', ['a=x\\ y']],
    ['"k k"="v v"', ['"k k"="v v"']],
    ['a="" b', ['a=""', 'b']],
    ['""', ['""']],
    ['a\\', ['a']],
    ['  a  ', ['a']],
    ['a="\\"" b', ['a="\\""', 'b']],
  ] as Array<[string, string[]]>)('%j → %j', (input, want) => {
    expect(parseWords(input)).toEqual(want);
  });
});
