import type { SourceRange } from '../../core/errors.js';

/**
 * The typed instructions the parser produces. Values are as written (after
 * line joining and quote-aware splitting): variable expansion happens at
 * conversion time, when the scope is known.
 */
export const KEYWORDS = [
  'ADD', 'ARG', 'CMD', 'COPY', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'FROM', 'HEALTHCHECK', 'LABEL', 'MAINTAINER',
  'ONBUILD', 'RUN', 'SHELL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR',
] as const;
export type Keyword = (typeof KEYWORDS)[number];

export interface Heredoc {
  readonly name: string;
  readonly data: string;
  /** False when the delimiter was quoted: the body is taken literally. */
  readonly expand: boolean;
  /** `<<-`: leading tabs were stripped. */
  readonly chomp: boolean;
}

/** One logical line: keyword, the joined text after it, heredoc bodies, and where it sits. */
export interface RawInstruction {
  readonly keyword: string;
  /** The logical line as written (keyword included, continuations joined); used for names and ONBUILD. */
  readonly original: string;
  /** Joined text after the keyword, flags included, trimmed. */
  readonly rest: string;
  readonly heredocs: readonly Heredoc[];
  readonly range: SourceRange;
}

/** Shell form keeps the text as one string; exec form is the JSON array. */
export type CommandForm = { readonly json: true; readonly args: readonly string[] } | { readonly json: false; readonly text: string };

interface Base {
  readonly range: SourceRange;
  readonly original: string;
}

export interface FromInstruction extends Base {
  readonly kind: 'FROM';
  readonly image: string;
  readonly name?: string;
  readonly platform?: string;
}

export interface RunInstruction extends Base {
  readonly kind: 'RUN';
  readonly cmd: CommandForm;
  readonly mounts: readonly string[];
  readonly network?: string;
  readonly security?: string;
  readonly heredocs: readonly Heredoc[];
}

export interface CmdInstruction extends Base {
  readonly kind: 'CMD' | 'ENTRYPOINT';
  readonly cmd: CommandForm;
}

export interface KeyValue {
  readonly key: string;
  readonly value: string;
}

export interface KeyValueInstruction extends Base {
  readonly kind: 'ENV' | 'LABEL';
  readonly pairs: readonly KeyValue[];
  /** Written in the legacy `KEY value` form (LegacyKeyValueFormat). */
  readonly legacy?: true;
}

export interface ArgInstruction extends Base {
  readonly kind: 'ARG';
  readonly args: ReadonlyArray<{ readonly key: string; readonly value?: string }>;
}

export interface ExposeInstruction extends Base {
  readonly kind: 'EXPOSE';
  readonly text: string;
}

export interface StringInstruction extends Base {
  readonly kind: 'USER' | 'WORKDIR' | 'STOPSIGNAL' | 'MAINTAINER';
  readonly value: string;
}

export interface VolumeInstruction extends Base {
  readonly kind: 'VOLUME';
  readonly volumes: readonly string[];
}

export interface ShellInstruction extends Base {
  readonly kind: 'SHELL';
  readonly shell: readonly string[];
}

export interface HealthcheckInstruction extends Base {
  readonly kind: 'HEALTHCHECK';
  readonly test: readonly string[];
  readonly interval?: number;
  readonly timeout?: number;
  readonly startPeriod?: number;
  readonly startInterval?: number;
  readonly retries?: number;
}

export interface OnbuildInstruction extends Base {
  readonly kind: 'ONBUILD';
  /** The trigger as written, e.g. `RUN make`; stored in the image config. */
  readonly expression: string;
  readonly trigger: Instruction;
}

export type CopySource = { readonly heredoc: Heredoc } | { readonly path: string };

export interface CopyInstruction extends Base {
  readonly kind: 'COPY' | 'ADD';
  readonly sources: readonly CopySource[];
  readonly dest: string;
  readonly from?: string;
  readonly chown?: string;
  readonly chmod?: string;
  readonly excludes: readonly string[];
  readonly link: boolean;
  /** COPY --parents: sources keep their directories (see CopyAction.parents). */
  readonly parents: boolean;
  readonly checksum?: string;
  readonly keepGitDir: boolean;
  /** ADD --unpack: extract archives (local ones by default) or not (remote ones by default). */
  readonly unpack?: boolean;
}

export type Instruction =
  | FromInstruction
  | RunInstruction
  | CmdInstruction
  | KeyValueInstruction
  | ArgInstruction
  | ExposeInstruction
  | StringInstruction
  | VolumeInstruction
  | ShellInstruction
  | HealthcheckInstruction
  | OnbuildInstruction
  | CopyInstruction;
