const USAGE: Record<string, string> = {
  help: `Usage: buildlite COMMAND [OPTIONS]

Commands:
  build     Build an image from a Dockerfile and a context directory
  push      Push an image built with -t to its registry
  graph     Print the build graph of a Dockerfile (json, dot, mermaid)
  login     Store credentials for a registry in $DOCKER_CONFIG/config.json
  logout    Remove stored credentials for a registry
  serve     Run the build API (service mode)
  worker    Run a build worker (service mode)
  version   Print the version

Run 'buildlite help COMMAND' for a command's options.`,
  build: `Usage: buildlite build [OPTIONS] CONTEXT

  -f, --file FILE            Dockerfile (default: CONTEXT/Dockerfile)
  -t, --tag REF              Name the image (repeatable)
      --push                 Push the image to every -t ref
  -o, --output SPEC          type=registry|oci|local,dest=PATH,name=REF (repeatable)
      --build-arg K=V        Set a build arg; plain K takes its value from the environment
      --target STAGE         Build up to this stage (default: the last one)
      --label K=V            Add a label to the image
      --secret id=ID,src=FILE|env=VAR  Expose a secret to RUN --mount=type=secret
      --network MODE         RUN network: default (none), none, host (needs --allow network.host)
      --allow ENTITLEMENT    Grant an entitlement, e.g. network.host
      --no-cache             Run every step
      --no-cache-filter STAGE  Run every step of this stage (repeatable)
      --platform linux/amd64 Target platform (only linux/amd64)
      --progress MODE        auto, tty, plain or json
      --iidfile FILE         Write the image digest to FILE
      --metadata-file FILE   Write the build result as JSON to FILE
      --root DIR             State directory (default: /var/lib/buildlite as root)
      --insecure-registry H  Allow plain HTTP to host H (loopback is always allowed)
      --debug-cache          Keep cache-key pre-images to explain misses
  -q, --quiet                Print only the image digest`,
  push: `Usage: buildlite push [--root DIR] REF [DEST_REF]

Pushes an image built earlier with -t REF (to REF, or to DEST_REF).`,
  graph: `Usage: buildlite graph [-f FILE] [--target T] [--build-arg K=V] [--format json|dot|mermaid] CONTEXT`,
  login: `Usage: buildlite login [-u USER] [--password-stdin] REGISTRY`,
  logout: `Usage: buildlite logout REGISTRY`,
  serve: `Usage: buildlite serve --redis URL [--listen ADDR] [--embedded-worker]`,
  worker: `Usage: buildlite worker --redis URL [--concurrency N]`,
  version: `Usage: buildlite version`,
};

export function usageOf(command: string): string {
  return USAGE[command] ?? USAGE['help']!;
}

export async function run(argv: string[]): Promise<number> {
  process.stdout.write(`${usageOf(argv[0] ?? 'help')}\n`);
  return 0;
}
