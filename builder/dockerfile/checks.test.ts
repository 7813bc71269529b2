import { describe, expect, it } from 'vitest';
import { FakeResolver } from '../../test/dockerfile/fake-resolver.js';
import type { BuildDefinition } from '../graph/index.js';
import { RULES, type RuleName } from './check-rules.js';
import { checkFailure } from './checks.js';
import { convertDockerfile, type ConvertOptions } from './convert.js';
import { DockerfileError } from './errors.js';

function conv(dockerfile: string, opts: Partial<ConvertOptions> = {}): Promise<BuildDefinition> {
  return convertDockerfile({ dockerfile, resolver: new FakeResolver(), allStages: true, ...opts });
}

/** The lines each rule fired on. */
async function fired(dockerfile: string, opts: Partial<ConvertOptions> = { dockerignore: '*.key\n' }): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const w of (await conv(dockerfile, opts)).warnings) {
    if (w.rule === undefined) continue;
    out.set(w.rule, [...(out.get(w.rule) ?? []), w.range?.startLine ?? 0]);
  }
  return out;
}

// [rule, a Dockerfile that breaks it, the lines it fires on, a Dockerfile close to it that does not]
const TABLE: Array<[RuleName, string, number[], string]> = [
  ['StageNameCasing', 'FROM busybox AS Build', [1], 'FROM busybox AS build'],
  ['FromAsCasing', 'FROM busybox as build\nFROM busybox AS other', [1], 'from busybox as build'],
  ['ConsistentInstructionCasing', 'FROM busybox\nrun a\nRUN b\nCmd ["x"]', [2, 4], 'from busybox\nrun a\ncmd ["x"]'],
  ['DuplicateStageName', 'FROM busybox AS a\nFROM busybox AS a', [2], 'FROM busybox AS a\nFROM busybox AS b'],
  ['ReservedStageName', 'FROM busybox AS context\nFROM busybox AS scratch', [1, 2], 'FROM scratch\nFROM busybox AS contexts'],
  ['MaintainerDeprecated', 'FROM busybox\nMAINTAINER me', [2], 'FROM busybox\nLABEL org.opencontainers.image.authors=me'],
  ['JSONArgsRecommended', 'FROM busybox\nCMD echo hi\nENTRYPOINT run it', [2, 3], 'FROM busybox\nCMD ["echo", "hi"]\nSHELL ["/bin/sh", "-c"]\nENTRYPOINT run it'],
  ['LegacyKeyValueFormat', 'FROM busybox\nENV A 1\nLABEL b 2', [2, 3], 'FROM busybox\nENV A=1\nLABEL b=2'],
  ['SecretsUsedInArgOrEnv', 'FROM busybox\nARG GITHUB_TOKEN\nENV api_key=x\nARG PASSWORD', [2, 3, 4], 'FROM busybox\nARG KEYCLOAK_URL\nENV PUBLIC_KEY=x\nARG TOKEN_FILE\nENV MONKEY=1'],
  ['UndefinedVar', 'FROM busybox\nCOPY a$SRC /x\nENV A=$NOPE\nWORKDIR ${DIR:-/w}', [2, 3, 4], 'FROM busybox\nARG SRC\nCOPY a$SRC /x\nENV B=1\nENV A=$B\nRUN echo $NOT_EXPANDED_BY_US'],
  ['UndefinedArgInFrom', 'ARG TAG=1\nFROM busybox:$TGA\nFROM busybox:${TAG}', [2], 'ARG TAG\nFROM busybox:${TAG:-latest}\nFROM --platform=$BUILDPLATFORM busybox'],
  ['MultipleInstructionsDisallowed', 'FROM busybox\nCMD ["a"]\nCMD ["b"]\nHEALTHCHECK NONE\nHEALTHCHECK NONE', [2, 4], 'FROM busybox AS a\nCMD ["a"]\nFROM a\nCMD ["b"]'],
  ['WorkdirRelativePath', 'FROM busybox\nWORKDIR app\nWORKDIR sub', [2], 'FROM busybox AS a\nWORKDIR /w\nFROM a\nWORKDIR rel'],
  ['CopyRelativeDestination', 'FROM busybox\nCOPY a b/\nADD c .', [2, 3], 'FROM busybox\nCOPY a /b/\nWORKDIR /w\nCOPY a b/'],
  ['ExposeProtoCasing', 'FROM busybox\nEXPOSE 80/TCP 53/Udp', [2, 2], 'FROM busybox\nEXPOSE 80/tcp 53'],
  ['ExposeInvalidFormat', 'FROM busybox\nEXPOSE 8080:80\nEXPOSE 127.0.0.1:9000:90/udp', [2, 3], 'FROM busybox\nEXPOSE 80 90/udp'],
  ['InvalidDefaultArgInFrom', 'ARG TAG\nFROM busybox:${TAG}', [2], 'ARG TAG=latest\nFROM busybox:${TAG}\nFROM scratch AS s\nFROM s'],
  ['RedundantTargetPlatform', 'FROM --platform=$TARGETPLATFORM busybox', [1], 'FROM --platform=$BUILDPLATFORM busybox'],
  ['FromPlatformFlagConstDisallowed', 'FROM --platform=linux/amd64 busybox AS build', [1], 'FROM --platform=linux/amd64 busybox AS build-amd64'],
  ['CopyIgnoredFile', 'FROM busybox\nCOPY secret.key /k\nADD . /all/', [2], 'FROM busybox\nCOPY app.js /a\nCOPY --from=busybox secret.key /k'],
  ['NoEmptyContinuation', 'FROM busybox\nRUN a \\\n\n  b', [2], 'FROM busybox\nRUN a \\\n# a comment\n  b'],
];

describe('build checks', () => {
  it.each(TABLE)('%s fires where the Dockerfile breaks it, and only there', async (rule, bad, lines, good) => {
    expect((await fired(bad)).get(rule)).toEqual(lines);
    expect((await fired(good)).get(rule)).toBeUndefined();
  });

  it('every rule is in the table, each warning names its rule, message, documentation and range', async () => {
    expect(new Set(TABLE.map(([r]) => r))).toEqual(new Set(Object.keys(RULES)));
    const def = await conv('FROM busybox\nCMD echo hi');
    expect(def.warnings).toEqual([
      {
        rule: 'JSONArgsRecommended',
        message: 'CMD in shell form runs under /bin/sh -c, which does not pass signals such as SIGTERM to the program: write it as a JSON array, e.g. CMD ["program", "arg"]',
        url: 'https://docs.docker.com/go/dockerfile/rule/json-args-recommended/',
        range: { file: 'Dockerfile', startLine: 2, endLine: 2, startColumn: 1, endColumn: 12 },
      },
    ]);
  });

  it('suggests the name meant', async () => {
    const msgs = (await conv('ARG TAG=1\nFROM busybox:$TGA\nENV FOOBAR=1\nENV X=$FOOBAZ')).warnings.map((w) => w.message);
    expect(msgs).toContain('FROM uses $TGA, which no ARG before the first FROM declares (did you mean $TAG?)');
    expect(msgs).toContain('$FOOBAZ is not defined here: no ENV or ARG before this line sets it (did you mean $FOOBAR?)');
  });

  it('the stages a build does not reach are checked only with allStages (build --check); file-wide rules always', async () => {
    const df = 'FROM busybox AS Unused\nCMD echo unused\nFROM busybox\nCMD ["ok"]';
    expect([...(await fired(df, { allStages: false })).keys()]).toEqual(['StageNameCasing']);
    expect([...(await fired(df)).keys()].sort()).toEqual(['JSONArgsRecommended', 'StageNameCasing']);
  });
});

describe('# check= and BUILDKIT_DOCKERFILE_CHECK', () => {
  const BAD = 'FROM busybox AS Build\nCMD echo hi\nENV A 1';

  it('skip= leaves the named rules out, skip=all every rule', async () => {
    expect([...(await fired(`# check=skip=JSONArgsRecommended,StageNameCasing\n${BAD}`)).keys()]).toEqual(['LegacyKeyValueFormat']);
    expect((await conv(`# check=skip=all\n${BAD}`)).warnings).toEqual([]);
  });

  it('error=true marks every warning, and the failure names the rules at the first warning\'s line', async () => {
    const def = await conv(`# check=error=true\n${BAD}`);
    expect(def.warnings.every((w) => w.fatal)).toBe(true);
    const err = checkFailure(def.warnings);
    expect(err).toBeInstanceOf(DockerfileError);
    expect(err?.message).toBe('build checks failed (check=error=true): JSONArgsRecommended, LegacyKeyValueFormat, StageNameCasing');
    expect(err?.range?.startLine).toBe(2);
    expect(checkFailure((await conv(BAD)).warnings)).toBeUndefined();
    expect(checkFailure((await conv(`# check=error=true;skip=all\n${BAD}`)).warnings)).toBeUndefined();
  });

  it('a check= comment right above an instruction skips rules for it alone', async () => {
    const df = 'FROM busybox\n# check=skip=JSONArgsRecommended\nCMD echo a\nFROM busybox\n# check=skip=JSONArgsRecommended\n#\nCMD echo b\n# check=nonsense\nENTRYPOINT c';
    expect((await fired(df)).get('JSONArgsRecommended')).toEqual([7, 9]);
  });

  it('the build arg replaces the directive, and is no unused build arg', async () => {
    const def = await conv(`# check=skip=all\n${BAD}`, { buildArgs: { BUILDKIT_DOCKERFILE_CHECK: 'skip=StageNameCasing' } });
    expect(def.warnings.map((w) => w.rule)).toEqual(['JSONArgsRecommended', 'LegacyKeyValueFormat']);
  });

  it.each([
    ['# check=skip\nFROM busybox', 'invalid check option "skip"', 1],
    ['# check=error=maybe\nFROM busybox', 'error=maybe', 1],
    ['# check=color=red\nFROM busybox', 'the options are skip, error and experimental', 1],
  ])('%j is an error at its line', async (df, part, line) => {
    const err = (await conv(df).catch((e: unknown) => e)) as DockerfileError;
    expect(err).toBeInstanceOf(DockerfileError);
    expect(err.message).toContain(part);
    expect(err.range?.startLine).toBe(line);
  });
});
