/**
 * A setup step (making a store's directories, probing the kernel) that runs
 * once for all callers: concurrent callers share one attempt and a success is
 * kept, but a failure is forgotten, so the next caller tries again. A store
 * whose directory could not be made once (a full disk, a permission fixed
 * meanwhile) is not dead for the rest of a long-lived worker.
 */
export function onceUntilDone(setup: () => Promise<void>): () => Promise<void> {
  let attempt: Promise<void> | undefined;
  return () =>
    (attempt ??= setup().catch((err: unknown) => {
      attempt = undefined;
      throw err;
    }));
}
