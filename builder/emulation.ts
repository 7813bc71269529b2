/**
 * Which platforms this machine can run RUN steps for: its own natively, the
 * others only through QEMU user emulation registered with binfmt_misc. The
 * kernel picks an interpreter by matching the first bytes of the program
 * against each registration's magic and mask; we do the same match on a
 * representative ELF header of each architecture, so the answer is what the
 * kernel would do. A registration needs the F flag: the kernel then opens
 * the interpreter when it is registered, and a step's root filesystem (which
 * holds no QEMU) can use it.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { BuildliteError, type ErrorCode, type SourceRange } from '../core/errors.js';
import { platformString, type Platform } from '../core/oci.js';
import { BUILDABLE_ARCHITECTURES, hostPlatform, normalizePlatform } from '../core/platform.js';
import type { Graph } from './graph/index.js';

export const BINFMT_DIR = '/proc/sys/fs/binfmt_misc';

/** A registration as the kernel prints it in binfmt_misc/NAME. */
export interface BinfmtEntry {
  readonly name: string;
  readonly enabled: boolean;
  readonly interpreter: string;
  readonly flags: string;
  readonly offset: number;
  readonly magic: Buffer;
  readonly mask?: Buffer;
}

/** `enabled\ninterpreter ...\nflags: OCF\noffset 0\nmagic 7f45...\nmask ff...`; undefined for an extension (`E`) entry. */
export function parseBinfmtEntry(name: string, text: string): BinfmtEntry | undefined {
  const lines = text.split('\n');
  const field = (key: string) => lines.find((l) => l.startsWith(`${key} `) || l.startsWith(`${key}: `))?.replace(/^[^ ]+:? /, '');
  const magic = field('magic');
  if (magic === undefined || !/^([0-9a-f]{2})+$/.test(magic)) return undefined;
  const mask = field('mask');
  return {
    name,
    enabled: lines[0] === 'enabled',
    interpreter: field('interpreter') ?? '',
    flags: field('flags') ?? '',
    offset: Number(field('offset') ?? 0),
    magic: Buffer.from(magic, 'hex'),
    ...(mask && /^([0-9a-f]{2})+$/.test(mask) ? { mask: Buffer.from(mask, 'hex') } : {}),
  };
}

/** ELF class, byte order and e_machine of each architecture buildlite builds for. */
const ELF: Readonly<Record<(typeof BUILDABLE_ARCHITECTURES)[number], { bits: 64 | 32; big?: true; machine: number; qemu: string }>> = {
  amd64: { bits: 64, machine: 0x3e, qemu: 'x86_64' },
  arm64: { bits: 64, machine: 0xb7, qemu: 'aarch64' },
  arm: { bits: 32, machine: 0x28, qemu: 'arm' },
  '386': { bits: 32, machine: 0x03, qemu: 'i386' },
  ppc64le: { bits: 64, machine: 0x15, qemu: 'ppc64le' },
  s390x: { bits: 64, big: true, machine: 0x16, qemu: 's390x' },
  riscv64: { bits: 64, machine: 0xf3, qemu: 'riscv64' },
  mips64le: { bits: 64, machine: 0x08, qemu: 'mips64el' },
  loong64: { bits: 64, machine: 0x102, qemu: 'loongarch64' },
};

/** The first 20 bytes of a static executable for `arch`: what binfmt_misc magics are written against. */
export function elfHeader(arch: string): Buffer | undefined {
  const e = ELF[arch as keyof typeof ELF];
  if (!e) return undefined;
  const b = Buffer.alloc(20);
  b.write('\x7fELF', 0, 'latin1');
  b[4] = e.bits === 64 ? 2 : 1;
  b[5] = e.big ? 2 : 1;
  b[6] = 1;
  if (e.big) {
    b.writeUInt16BE(2, 16);
    b.writeUInt16BE(e.machine, 18);
  } else {
    b.writeUInt16LE(2, 16);
    b.writeUInt16LE(e.machine, 18);
  }
  return b;
}

/** Does the registration take this program header, as the kernel's check_file does? */
export function entryMatches(entry: BinfmtEntry, header: Buffer): boolean {
  if (!entry.enabled || entry.offset + entry.magic.length > header.length) return false;
  for (let i = 0; i < entry.magic.length; i++) {
    const m = entry.mask ? entry.mask[i] ?? 0xff : 0xff;
    if (((header[entry.offset + i] as number) & m) !== ((entry.magic[i] as number) & m)) return false;
  }
  return true;
}

/** How this machine runs a platform's programs, or why it cannot. */
export type Runner =
  | { readonly kind: 'native' }
  | { readonly kind: 'emulated'; readonly entry: string; readonly interpreter: string }
  | { readonly kind: 'unavailable'; readonly reason: string };

/** What the kernel runs natively: the host's architecture, and 32-bit x86 on amd64. */
function nativeArchitectures(host: Platform): Set<string> {
  return new Set(host.architecture === 'amd64' ? ['amd64', '386'] : [host.architecture]);
}

/**
 * The binfmt_misc registrations of this machine, read once; `dir` is the
 * binfmt_misc mount (the kernel's; a test may give another).
 */
export class EmulationProbe {
  private entries: Promise<BinfmtEntry[] | undefined> | undefined;

  constructor(
    private readonly dir: string = BINFMT_DIR,
    private readonly host: Platform = hostPlatform(),
  ) {}

  /** undefined when binfmt_misc is not mounted. */
  private load(): Promise<BinfmtEntry[] | undefined> {
    this.entries ??= (async () => {
      let names: string[];
      try {
        names = await readdir(this.dir);
      } catch {
        return undefined;
      }
      if (!names.includes('register')) return undefined;
      const out: BinfmtEntry[] = [];
      for (const n of names) {
        if (n === 'register' || n === 'status') continue;
        const text = await readFile(path.join(this.dir, n), 'utf8').catch(() => undefined);
        const e = text === undefined ? undefined : parseBinfmtEntry(n, text);
        if (e) out.push(e);
      }
      return out;
    })();
    return this.entries;
  }

  async runner(p: Platform): Promise<Runner> {
    const n = normalizePlatform(p);
    if (n.os !== 'linux') return { kind: 'unavailable', reason: `${platformString(n)} is not a Linux platform` };
    if (nativeArchitectures(this.host).has(n.architecture)) return { kind: 'native' };
    const header = elfHeader(n.architecture);
    if (!header) return { kind: 'unavailable', reason: `buildlite knows no ELF header for ${n.architecture}` };
    const entries = await this.load();
    if (!entries) return { kind: 'unavailable', reason: `binfmt_misc is not mounted on ${this.dir}` };
    const matching = entries.filter((e) => entryMatches(e, header));
    const usable = matching.find((e) => e.flags.includes('F'));
    if (usable) return { kind: 'emulated', entry: usable.name, interpreter: usable.interpreter };
    const qemu = ELF[n.architecture as keyof typeof ELF].qemu;
    if (matching.length) return { kind: 'unavailable', reason: `the binfmt_misc registration ${matching[0]!.name} for ${qemu} programs lacks the F flag, so a step's root filesystem would need the interpreter` };
    return { kind: 'unavailable', reason: `no binfmt_misc registration runs ${qemu} programs` };
  }

  /** Every buildable platform this machine runs, natively or emulated (what a worker advertises). */
  async runnable(): Promise<Array<{ platform: Platform; emulated: boolean }>> {
    const out: Array<{ platform: Platform; emulated: boolean }> = [];
    for (const architecture of BUILDABLE_ARCHITECTURES) {
      const p = normalizePlatform({ os: 'linux', architecture });
      const r = await this.runner(p);
      if (r.kind !== 'unavailable') out.push({ platform: p, emulated: r.kind === 'emulated' });
    }
    return out;
  }
}

/** A RUN for a platform this machine cannot run: the build stops before any step starts. */
export class EmulationUnavailableError extends BuildliteError {
  readonly code: ErrorCode = 'SANDBOX';
  constructor(
    readonly platform: string,
    reason: string,
    range?: SourceRange,
  ) {
    super(
      `RUN for ${platform} needs QEMU user emulation, which this machine lacks: ${reason}. ` +
        'Install it as root with `bash scripts/provision.sh` (Debian\'s qemu-user-static, registered with binfmt_misc with the F flag), ' +
        `or build ${platform} on a machine of that architecture`,
      range ? { range } : undefined,
    );
  }
  override details(): Record<string, string> {
    return { platform: this.platform };
  }
}

/** Every RUN of the graph can run here, or the first that cannot is an EmulationUnavailableError at its line. */
export async function checkEmulation(graph: Graph, probe: EmulationProbe): Promise<void> {
  const seen = new Map<string, Runner>();
  for (const v of graph.topoOrder()) {
    if (v.def.kind !== 'exec') continue;
    // ExecDef leaves linux/amd64 out (see vertex.ts).
    const p = v.def.platform ?? { os: 'linux', architecture: 'amd64' };
    const k = platformString(p);
    let r = seen.get(k);
    if (!r) seen.set(k, (r = await probe.runner(p)));
    if (r.kind === 'unavailable') throw new EmulationUnavailableError(k, r.reason, graph.meta.get(v.digest)?.range);
  }
}
