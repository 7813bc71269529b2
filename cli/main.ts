import { runCli, type CommandTable } from './dispatch.js';

/**
 * Entry point: picks the command and loads only its module, so `--version`
 * and `help` never pay for the builder, gRPC or Redis clients.
 */
const COMMANDS: CommandTable = {
  build: () => import('./commands/build.js'),
  push: () => import('./commands/push.js'),
  graph: () => import('./commands/graph.js'),
  login: () => import('./commands/login.js'),
  logout: () => import('./commands/login.js').then((m) => ({ run: m.runLogout })),
  version: () => import('./commands/version.js'),
  serve: () => import('./commands/service.js').then((m) => ({ run: m.runServe })),
  worker: () => import('./commands/service.js').then((m) => ({ run: m.runWorker })),
  help: () => import('./commands/help.js'),
  du: () => import('./commands/du.js'),
  prune: () => import('./commands/prune.js'),
  debug: () => import('./commands/debug.js'),
  logs: () => import('./commands/logs.js'),
  ls: () => import('./commands/ls.js'),
  inspect: () => import('./commands/inspect.js'),
  watch: () => import('./commands/watch.js'),
  attach: () => import('./commands/watch.js'),
  cancel: () => import('./commands/cancel.js'),
  workers: () => import('./commands/workers.js'),
};

runCli(COMMANDS);
