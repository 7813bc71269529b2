/**
 * Build checks: BuildKit's rules about the Dockerfile text (`docker build
 * --check`), each under BuildKit's name so `# check=skip=NAME` and the docs
 * behind `url` work the same, with a message in our own words. One entry a
 * rule: what it is about, and what it says where it fires. Where each fires:
 * the static pass over the whole file (check-static.ts) or the dispatcher that
 * knows the fact (a scope for UndefinedVar, the image's SHELL for
 * JSONArgsRecommended, ...).
 */
export interface CheckRule<A extends unknown[] = never[]> {
  readonly name: string;
  readonly description: string;
  readonly url?: string;
  readonly message: (...args: A) => string;
}

const docs = (slug: string): string => `https://docs.docker.com/go/dockerfile/rule/${slug}/`;
const didYouMean = (s: string | undefined, sigil = ''): string => (s ? ` (did you mean ${sigil}${s}?)` : '');

export const RULES = {
  StageNameCasing: {
    name: 'StageNameCasing',
    description: 'Stage names should be lower case',
    url: docs('stage-name-casing'),
    message: (name: string) => `stage name ${JSON.stringify(name)} is not lower case; stages are found case-insensitively, so write ${JSON.stringify(name.toLowerCase())}`,
  },
  FromAsCasing: {
    name: 'FromAsCasing',
    description: "The 'AS' keyword should be cased like the 'FROM' keyword",
    url: docs('from-as-casing'),
    message: (from: string, as: string) => `${JSON.stringify(as)} is not cased like ${JSON.stringify(from)}: write ${JSON.stringify(from === from.toLowerCase() ? 'as' : 'AS')}`,
  },
  ConsistentInstructionCasing: {
    name: 'ConsistentInstructionCasing',
    description: 'Instructions should all be upper case or all lower case',
    url: docs('consistent-instruction-casing'),
    message: (written: string, majority: 'upper' | 'lower') =>
      `${JSON.stringify(written)} is not in the ${majority} case most instructions of this file use: write ${JSON.stringify(majority === 'upper' ? written.toUpperCase() : written.toLowerCase())}`,
  },
  DuplicateStageName: {
    name: 'DuplicateStageName',
    description: 'Stage names should be unique',
    url: docs('duplicate-stage-name'),
    message: (name: string, firstLine: number) => `stage name ${JSON.stringify(name)} was already given on line ${firstLine}; --from, --target and later FROMs find the last stage of that name`,
  },
  ReservedStageName: {
    name: 'ReservedStageName',
    description: 'Reserved words should not name stages',
    url: docs('reserved-stage-name'),
    message: (name: string) => `${JSON.stringify(name)} is a reserved word (${name === 'scratch' ? 'FROM scratch is the empty image' : '--from=context is the build context'}); name the stage something else`,
  },
  MaintainerDeprecated: {
    name: 'MaintainerDeprecated',
    description: 'MAINTAINER is deprecated: name the author with a label',
    url: docs('maintainer-deprecated'),
    message: () => 'MAINTAINER is deprecated: name the author with LABEL org.opencontainers.image.authors="..." instead',
  },
  JSONArgsRecommended: {
    name: 'JSONArgsRecommended',
    description: 'CMD and ENTRYPOINT should be written as JSON arrays, so the program gets signals',
    url: docs('json-args-recommended'),
    message: (keyword: string) => `${keyword} in shell form runs under /bin/sh -c, which does not pass signals such as SIGTERM to the program: write it as a JSON array, e.g. ${keyword} ["program", "arg"]`,
  },
  LegacyKeyValueFormat: {
    name: 'LegacyKeyValueFormat',
    description: 'KEY=value should be used, not the legacy "KEY value" form',
    url: docs('legacy-key-value-format'),
    message: (keyword: string) => `"${keyword} KEY value" is the legacy form: write "${keyword} KEY=value"`,
  },
  SecretsUsedInArgOrEnv: {
    name: 'SecretsUsedInArgOrEnv',
    description: 'Secrets should not be passed in ARG or ENV',
    url: docs('secrets-used-in-arg-or-env'),
    message: (keyword: string, key: string) =>
      `${keyword} ${JSON.stringify(key)} looks like it holds a secret, and ${keyword} values stay in the image's config or history: use RUN --mount=type=secret`,
  },
  UndefinedVar: {
    name: 'UndefinedVar',
    description: 'Variables should be defined before they are used',
    url: docs('undefined-var'),
    message: (name: string, suggestion?: string) => `$${name} is not defined here: no ENV or ARG before this line sets it${didYouMean(suggestion, '$')}`,
  },
  UndefinedArgInFrom: {
    name: 'UndefinedArgInFrom',
    description: 'FROM should use only ARGs declared before the first FROM',
    url: docs('undefined-arg-in-from'),
    message: (name: string, suggestion?: string) => `FROM uses $${name}, which no ARG before the first FROM declares${didYouMean(suggestion, '$')}`,
  },
  InvalidDefaultArgInFrom: {
    name: 'InvalidDefaultArgInFrom',
    description: 'The default values of global ARGs should make a valid base image name',
    url: docs('invalid-default-arg-in-from'),
    message: (base: string) => `without --build-arg, FROM ${base} names no valid image: give its ARG a default that makes one`,
  },
  RedundantTargetPlatform: {
    name: 'RedundantTargetPlatform',
    description: 'FROM --platform=$TARGETPLATFORM says what is the default already',
    url: docs('redundant-target-platform'),
    message: (written: string) => `--platform=${written} is the default platform of FROM: leave it out`,
  },
  FromPlatformFlagConstDisallowed: {
    name: 'FromPlatformFlagConstDisallowed',
    description: 'FROM --platform should not be a constant',
    url: docs('from-platform-flag-const-disallowed'),
    message: (platform: string) => `FROM --platform=${platform} pins one platform for every build of this stage: use $BUILDPLATFORM or $TARGETPLATFORM, or name the stage after the platform`,
  },
  CopyIgnoredFile: {
    name: 'CopyIgnoredFile',
    description: 'COPY and ADD should not name files that .dockerignore leaves out of the context',
    url: docs('copy-ignored-file'),
    message: (keyword: string, source: string) => `${keyword} ${JSON.stringify(source)}: .dockerignore leaves it out of the build context, so it cannot be copied`,
  },
  MultipleInstructionsDisallowed: {
    name: 'MultipleInstructionsDisallowed',
    description: 'CMD, ENTRYPOINT and HEALTHCHECK should appear once per stage',
    url: docs('multiple-instructions-disallowed'),
    message: (keyword: string, laterLine: number) => `this ${keyword} has no effect: the ${keyword} on line ${laterLine} in the same stage replaces it`,
  },
  WorkdirRelativePath: {
    name: 'WorkdirRelativePath',
    description: 'The first WORKDIR of a build should be absolute',
    url: docs('workdir-relative-path'),
    message: (dir: string) => `WORKDIR ${JSON.stringify(dir)} is relative to the base image's working directory, which may change with the base: make it absolute`,
  },
  CopyRelativeDestination: {
    // Not a BuildKit rule (hadolint's DL3045): the same fragility as WorkdirRelativePath, for COPY and ADD.
    name: 'CopyRelativeDestination',
    description: 'COPY and ADD to a relative path should follow a WORKDIR',
    message: (keyword: string, dest: string) =>
      `${keyword} to ${JSON.stringify(dest)} with no WORKDIR in this stage lands under the base image's working directory: set WORKDIR first or give an absolute path`,
  },
  ExposeProtoCasing: {
    name: 'ExposeProtoCasing',
    description: 'EXPOSE protocols should be lower case',
    url: docs('expose-proto-casing'),
    message: (port: string) => `the protocol in EXPOSE ${port} is not lower case: write ${JSON.stringify(port.toLowerCase())}`,
  },
  ExposeInvalidFormat: {
    name: 'ExposeInvalidFormat',
    description: 'EXPOSE should give container ports only, with no IP address or host port',
    url: docs('expose-invalid-format'),
    message: (port: string) => `EXPOSE ${port} names an address or host port, which an image cannot publish: only the container port is exposed (BuildKit plans to refuse this)`,
  },
  NoEmptyContinuation: {
    name: 'NoEmptyContinuation',
    description: 'Continued instructions should not contain empty lines',
    url: docs('no-empty-continuation'),
    message: () => 'an empty line inside a continued instruction is skipped today, and BuildKit plans to refuse it: remove it',
  },
} as const satisfies Record<string, CheckRule>;

export type RuleName = keyof typeof RULES;

const SECRET_WORDS = ['apikey', 'auth', 'credential', 'credentials', 'key', 'password', 'pword', 'passwd', 'secret', 'token'];
const NOT_SECRET_WORDS = ['public', 'file', 'version'];
const wordAt = (words: readonly string[]): RegExp => new RegExp(`(?:^|_)(?:${words.join('|')})(?:_|$)`, 'i');
const SECRET = wordAt(SECRET_WORDS);
const NOT_SECRET = wordAt(NOT_SECRET_WORDS);

/**
 * Whether a variable name reads like a secret: one of BuildKit's words as a
 * whole `_`-separated part (`GITHUB_TOKEN`, `api_key`), unless a word such as
 * FILE or PUBLIC says it holds something else (`KEY_FILE`).
 */
export function looksLikeSecret(name: string): boolean {
  return SECRET.test(name) && !NOT_SECRET.test(name);
}

/** All lower or all upper case: only those count towards a file's majority casing. */
export function casingOf(word: string): 'upper' | 'lower' | 'mixed' {
  if (word === word.toLowerCase()) return 'lower';
  if (word === word.toUpperCase()) return 'upper';
  return 'mixed';
}

/** Names FROM ... AS may not take: `scratch` is the empty image and `context` the build context of --from. */
export const RESERVED_STAGE_NAMES: ReadonlySet<string> = new Set(['scratch', 'context']);
