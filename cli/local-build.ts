import { writeFile } from 'node:fs/promises';
import type { BuildEvent, BuildResult } from '../core/build.js';
import type { WireError } from '../core/errors.js';
import { Builder, remoteContextRequest } from '../builder/index.js';
import type { ParsedBuild } from './parsed-build.js';
import { codeId } from './code-id.js';
import { Interrupts } from './interrupts.js';
import { writeMetadata } from './metadata.js';
import { createRenderer, type Renderer } from './progress.js';
import { openSshAgents } from './ssh-agents.js';

/** Embedded mode: the builder runs in this process against a local state directory. */
export async function runLocalBuild(p: ParsedBuild): Promise<number> {
  if (p.request.network === 'host' && (p.request.allow ?? []).includes('network.host') && !p.allowHostNetwork) {
    // Both halves are needed: the build asks (--allow), the operator grants. Embedded, the operator is whoever runs this.
    process.stderr.write(
      'error: --network=host is not allowed on this machine: the operator grants it with --allow-host-network or BUILDLITE_ALLOW_HOST_NETWORK=1\n',
    );
    return 1;
  }
  // Agents for --ssh key files live exactly as long as the build (and are stopped if opening the builder fails).
  await using agents = await openSshAgents(p.ssh);
  // ADD <url> reaches no loopback, private or link-local address unless the developer says so:
  // a Dockerfile from someone else's repository must not read this machine's local services.
  const builder = await Builder.open({
    root: p.root,
    insecureRegistries: p.insecure,
    allowHostNetwork: p.allowHostNetwork,
    allowSecurityInsecure: p.allowSecurityInsecure,
    httpPolicy: { allowPrivate: p.allowPrivateUrls, deniedHint: 'to allow it, pass --allow-private-urls (or set BUILDLITE_ALLOW_PRIVATE_URLS=1)' },
    ...(p.timeouts ? { timeouts: p.timeouts } : {}),
    limits: p.limits,
    codeId: codeId(),
  });
  // A limit this machine cannot enforce is said once, before anything runs: never ignored in silence.
  for (const w of builder.limitWarnings) process.stderr.write(`warning: ${w}\n`);
  using interrupts = new Interrupts();
  let renderer: Renderer | undefined;
  let result: BuildResult | undefined;
  let error: WireError | undefined;
  try {
    // A URL context is fetched now, by this builder under its URL policy; its Dockerfile is read from it.
    await using remote = p.remoteContext ? await builder.openContext(p.remoteContext.url, { secrets: p.secrets, ssh: agents.sockets, signal: interrupts.signal }) : undefined;
    const request = remote ? await remoteContextRequest(p.request, remote, p.remoteContext!.url, p.remoteContext!.file, builder.limits.maxDockerfileBytes) : p.request;
    renderer = createRenderer(p.progress, request.dockerfile);
    for await (const ev of builder.build(request, { secrets: p.secrets, ssh: agents.sockets, signal: interrupts.signal, debugCache: p.debugCache }) as AsyncIterable<BuildEvent>) {
      renderer.event(ev);
      if (ev.type === 'result') result = ev.result;
      if (ev.type === 'error') error = ev.error;
    }
  } finally {
    renderer?.close();
    await builder.close();
  }
  if (p.metadataFile) await writeMetadata(p.metadataFile, p, { ...(result ? { result } : {}), ...(error ? { error } : {}) });
  if (interrupts.received) return interrupts.exitCode;
  if (error || !result) return 1;
  if (p.iidfile) await writeFile(p.iidfile, result.imageDigest);
  if (p.progress === 'quiet') process.stdout.write(`${result.imageDigest}\n`);
  return 0;
}
