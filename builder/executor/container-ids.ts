import { randomBytes } from 'node:crypto';
import { ownerTag } from '../../core/process-liveness.js';

/**
 * Container ids name the process that started them: `bl-<pid>-<starttime>-<random>`.
 * Several processes may share one state root (and so one runc root); with the
 * owner in the id, each kills only its own steps when it dies, and a later
 * process can tell a dead owner's container from a live one's.
 */
export function newContainerId(): string {
  return `${ownPrefix()}${randomBytes(4).toString('hex')}`;
}

/** What every id of this process starts with. */
export function ownPrefix(): string {
  return `bl-${ownerTag()}-`;
}

/** The owner tag (`<pid>-<starttime>`) an id names, or undefined for an id without one (made before owners were named). */
export function ownerOf(id: string): string | undefined {
  const m = /^bl-(\d+-\d+)-[0-9a-f]+$/.exec(id);
  return m ? m[1] : undefined;
}
