/**
 * Secret values of queued builds, kept in the memory of the one process that
 * runs both the API and a worker (`serve --embedded-worker`): they never touch
 * Redis, disk or logs. A build with secrets is routed to that worker's own
 * queue; if the process dies the values die with it and the build fails.
 */
export class SecretVault {
  private readonly byBuild = new Map<string, ReadonlyMap<string, Buffer>>();
  constructor(readonly holderId: string) {}
  put(buildId: string, secrets: ReadonlyMap<string, Buffer>): void {
    this.byBuild.set(buildId, secrets);
  }
  get(buildId: string): ReadonlyMap<string, Buffer> | undefined {
    return this.byBuild.get(buildId);
  }
  /** Forgets a build's values (and zeroes the buffers) once it has ended. */
  drop(buildId: string): void {
    for (const v of this.byBuild.get(buildId)?.values() ?? []) v.fill(0);
    this.byBuild.delete(buildId);
  }
}
