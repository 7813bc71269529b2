import { runCli } from './dispatch.js';

/**
 * `buildlite push` alone, bundled apart by scripts/bundle.mjs: the bin runs
 * this for `push`, so a re-push (mostly Node's start) loads 0.15 MB of code
 * instead of the whole CLI's 1.6 MB. The commands behave as in main.ts.
 */
runCli({ push: () => import('./commands/push.js') });
