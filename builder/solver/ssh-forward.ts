import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { CodedError } from '../../core/errors.js';

/** Who may use a forwarded socket inside the step (BuildKit's mode, uid and gid of type=ssh). */
export interface SocketOwner {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

export interface ForwardedAgent extends AsyncDisposable {
  /** The socket to bind-mount into the step. */
  readonly socket: string;
}

/**
 * One step's view of an ssh agent: a fresh socket, owned and moded as the
 * mount asks, that relays each connection to the agent (BuildKit's
 * sshforward proxies the same way over its session). Binding the agent's own
 * socket would leak its host path into the step (mountinfo shows a bind's
 * source) and would keep the host owner's permissions, which a step running
 * as another user could not use. The relay lives until disposed; the agent
 * itself is the caller's.
 */
export async function forwardAgent(agent: string, tmpDir: string, owner: SocketOwner): Promise<ForwardedAgent> {
  const dir = await mkdtemp(path.join(tmpDir, 'ssh-'));
  const socket = path.join(dir, 'agent.sock');
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(agent);
    open.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  const close = async () => {
    for (const s of open) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socket, () => resolve());
    });
    await chmod(socket, owner.mode);
    await chown(socket, owner.uid, owner.gid);
  } catch (err) {
    await close();
    // The code only: the message would name host paths.
    throw new CodedError('SANDBOX', `cannot set up the ssh agent socket for this step (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  return { socket, [Symbol.asyncDispose]: close };
}
