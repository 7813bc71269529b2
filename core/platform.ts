/**
 * Platforms as OCI names them (`os/architecture[/variant]`): parsing what
 * people write, the one normal form everything compares and prints, the
 * platforms buildlite builds for, and which manifest of an index serves a
 * wanted platform. The normal form follows containerd's platforms package,
 * which BuildKit's platform args and registries' indexes are written in:
 * `aarch64` is `arm64`, `arm64/v8` is plain `arm64`, `arm` is `arm/v7`.
 */
import { BuildliteError, type ErrorCode } from './errors.js';
import { platformString as formatPlatform, type Platform } from './oci.js';

/** A platform that cannot be parsed, or that buildlite does not build for. */
export class PlatformError extends BuildliteError {
  readonly code: ErrorCode = 'INVALID_ARGUMENT';
  constructor(message: string, readonly platform: string) {
    super(message);
  }
  override details(): Record<string, string> {
    return { platform: this.platform };
  }
}

/**
 * Architectures a Linux image can be built for: the host's natively, the
 * others under QEMU user emulation (core has no opinion on which are
 * available; builder/emulation.ts checks that).
 */
export const BUILDABLE_ARCHITECTURES = ['amd64', 'arm64', 'arm', '386', 'ppc64le', 's390x', 'riscv64', 'mips64le', 'loong64'] as const;

const OS_ALIASES: Readonly<Record<string, string>> = { macos: 'darwin' };
const ARCH_ALIASES: Readonly<Record<string, string>> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  i386: '386',
  i686: '386',
  armhf: 'arm',
  armel: 'arm',
};
const KNOWN_OS = new Set(['linux', 'windows', 'darwin', 'freebsd', 'netbsd', 'openbsd', 'solaris', 'illumos', 'android', 'ios', 'aix', 'plan9']);
const PART = /^[a-z0-9._-]{1,32}$/;

/** The normal form: lower case, aliases resolved, the default variant of each architecture applied. */
export function normalizePlatform(p: Platform): Platform {
  const rawOs = p.os.toLowerCase();
  const os = OS_ALIASES[rawOs] ?? rawOs;
  const rawArch = p.architecture.toLowerCase();
  const architecture = ARCH_ALIASES[rawArch] ?? rawArch;
  let variant = (p.variant ?? '').toLowerCase();
  // The alias itself names a variant (Debian's armhf is v7, armel v6).
  if (rawArch === 'armhf') variant = 'v7';
  else if (rawArch === 'armel') variant = 'v6';
  variant = normalizeVariant(architecture, variant);
  return variant ? { os, architecture, variant } : { os, architecture };
}

function normalizeVariant(arch: string, variant: string): string {
  switch (arch) {
    case 'arm64':
      if (['8', 'v8', 'v8.0'].includes(variant)) return '';
      if (['9', 'v9.0'].includes(variant)) return 'v9';
      return variant;
    case 'arm':
      if (variant === '' || variant === '7') return 'v7';
      if (/^[5-8]$/.test(variant)) return `v${variant}`;
      return variant;
    case 'amd64':
      return variant === 'v1' ? '' : variant;
    case '386':
      return '';
    default:
      return variant;
  }
}

/**
 * `os/arch[/variant]`, or only an architecture (`arm64`: Linux) or only an OS
 * (`linux`: the host's architecture), as containerd reads them; normalised.
 */
export function parsePlatform(text: string): Platform {
  const t = text.trim().toLowerCase();
  const parts = t.split('/');
  if (parts.length > 3 || parts.some((x) => !PART.test(x))) {
    throw new PlatformError(`invalid platform ${JSON.stringify(text.slice(0, 100))}: want OS/ARCH[/VARIANT], e.g. linux/arm64`, text.slice(0, 100));
  }
  if (parts.length === 1) {
    const one = parts[0] as string;
    return KNOWN_OS.has(one) || OS_ALIASES[one] ? normalizePlatform({ ...hostPlatform(), os: one }) : normalizePlatform({ os: 'linux', architecture: one });
  }
  const [os, architecture, variant] = parts as [string, string, string?];
  return normalizePlatform(variant ? { os, architecture, variant } : { os, architecture });
}

/** `--platform linux/amd64,linux/arm64`: each normalised, duplicates (after normalising) dropped, order kept. */
export function parsePlatformList(text: string): Platform[] {
  const out: Platform[] = [];
  const seen = new Set<string>();
  for (const item of text.split(',')) {
    if (item.trim() === '') throw new PlatformError(`invalid platform list ${JSON.stringify(text.slice(0, 100))}: an empty entry`, text.slice(0, 100));
    const p = parsePlatform(item);
    const k = formatPlatform(p);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(p);
    }
  }
  return out;
}

/** `linux_arm64`, `linux_arm_v7`: the directory buildx gives each platform of a local or tar output. */
export function platformDirName(p: Platform): string {
  return formatPlatform(p).replaceAll('/', '_');
}

/** Node's names for CPU architectures, in OCI's. */
const NODE_ARCH: Readonly<Record<string, string>> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips64el: 'mips64le',
};

/** The platform this process runs on, normalised (an arm host's variant from the version Node was built for). */
export function hostPlatform(): Platform {
  const architecture = NODE_ARCH[process.arch] ?? process.arch;
  const armVersion = (process.config.variables as Record<string, unknown>)['arm_version'];
  const variant = architecture === 'arm' && typeof armVersion === 'string' ? `v${armVersion}` : undefined;
  return normalizePlatform({ os: 'linux', architecture, ...(variant ? { variant } : {}) });
}

/**
 * The one rule for what a build may target, applied wherever a platform
 * enters (CLI flags, the API, the builder): Linux, on an architecture some
 * QEMU emulates. Whether this machine can run it is the builder's question.
 */
export function checkBuildablePlatform(p: Platform): void {
  const n = normalizePlatform(p);
  const text = formatPlatform(n);
  if (n.os !== 'linux') throw new PlatformError(`platform ${text} is not supported: buildlite builds Linux images`, text);
  if (!(BUILDABLE_ARCHITECTURES as readonly string[]).includes(n.architecture)) {
    throw new PlatformError(`platform ${text} is not supported: the architectures are ${BUILDABLE_ARCHITECTURES.join(', ')}`, text);
  }
  if (n.variant !== undefined && !/^v\d+(\.\d+)?$/.test(n.variant)) throw new PlatformError(`platform ${text}: variant ${JSON.stringify(n.variant)} is not one of the form v7, v8`, text);
}

/** More platforms than any index needs is a typo or an attack on the worker pool. */
export const MAX_TARGET_PLATFORMS = 16;

/**
 * The target platforms of a build, wherever they enter (the CLI's flag, the
 * API's request, the builder): normalised, duplicates dropped, each checked by
 * checkBuildablePlatform. An empty list is the host's platform.
 */
export function targetPlatforms(list: readonly Platform[] | undefined): Platform[] {
  if (!list || list.length === 0) return [hostPlatform()];
  if (list.length > MAX_TARGET_PLATFORMS) throw new PlatformError(`${list.length} platforms: at most ${MAX_TARGET_PLATFORMS} in one build`, `${list.length} platforms`);
  const out = new Map<string, Platform>();
  for (const p of list) {
    checkBuildablePlatform(p);
    const n = normalizePlatform(p);
    out.set(formatPlatform(n), n);
  }
  return [...out.values()];
}

/**
 * Variants of one architecture that can stand in for the wanted one, best
 * first (containerd's fallbacks: an arm/v7 machine runs v6 and v5 code, an
 * amd64/v3 one runs v2 and baseline code).
 */
function acceptedVariants(want: Platform): string[] {
  const v = want.variant ?? '';
  const m = /^v(\d+)$/.exec(v);
  if (want.architecture === 'arm' && m) {
    const out: string[] = [];
    for (let i = Number(m[1]); i >= 5; i--) out.push(`v${i}`);
    return out;
  }
  if (want.architecture === 'amd64' && m) {
    const out: string[] = [];
    for (let i = Number(m[1]); i >= 2; i--) out.push(`v${i}`);
    return [...out, ''];
  }
  return [v];
}

/**
 * How well `have` (an index entry's platform) serves `want`: 0 is an exact
 * match after normalising (so an entry `arm64/v8` serves `arm64`), higher is a
 * fallback, undefined is no match. OS features and versions are not compared
 * (they matter for Windows images, which buildlite does not build).
 */
export function platformRank(want: Platform, have: Platform | undefined): number | undefined {
  if (!have) return undefined;
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  if (w.os !== h.os || w.architecture !== h.architecture) return undefined;
  const i = acceptedVariants(w).indexOf(h.variant ?? '');
  return i < 0 ? undefined : i;
}

/** The entry of `entries` that best serves `want`, or undefined when none does. */
export function bestPlatformMatch<T extends { readonly platform?: Platform }>(want: Platform, entries: readonly T[]): T | undefined {
  let best: T | undefined;
  let bestRank = Infinity;
  for (const e of entries) {
    const r = platformRank(want, e.platform);
    if (r !== undefined && r < bestRank) {
      best = e;
      bestRank = r;
    }
  }
  return best;
}

export function samePlatform(a: Platform, b: Platform): boolean {
  return formatPlatform(normalizePlatform(a)) === formatPlatform(normalizePlatform(b));
}

/**
 * A base image (or layout) has no manifest for the platform a build wants:
 * NOT_FOUND, naming the image, the platform and the platforms it does have.
 */
export class NoMatchingPlatformError extends BuildliteError {
  readonly code: ErrorCode = 'NOT_FOUND';
  constructor(
    readonly image: string,
    readonly wanted: Platform,
    readonly available: readonly string[],
  ) {
    const have = available.length ? available.join(', ') : 'none';
    super(`${image} has no image for platform ${formatPlatform(wanted)} (its platforms: ${have.slice(0, 300)})`);
  }
  override details(): Record<string, string> {
    return { platform: formatPlatform(this.wanted), available: this.available.join(',').slice(0, 300) };
  }
}

/** An index entry's or config's platform as text, `?` when it names none. */
export function describePlatform(p: Platform | undefined): string {
  return p && p.os && p.architecture ? formatPlatform(normalizePlatform(p)) : '?';
}
