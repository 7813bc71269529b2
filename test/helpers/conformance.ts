import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './cli.js';

/**
 * The team's differential conformance suite, when it is present: where
 * BUILDLITE_CONFORMANCE_DIR points, else the `shared/conformance` directory
 * beside the repository (where CI keeps it). Tests that use it run its cases
 * when it is there and say so when it is not.
 */
export const CONFORMANCE_DIR = process.env.BUILDLITE_CONFORMANCE_DIR ?? path.join(REPO_ROOT, '..', 'shared', 'conformance');

/** The case names (directories with a Dockerfile), sorted; empty when the suite is absent. */
export function conformanceCases(): string[] {
  const dir = path.join(CONFORMANCE_DIR, 'cases');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((c) => existsSync(path.join(dir, c, 'Dockerfile')))
    .sort();
}
