import { execFile } from 'node:child_process';
import { SandboxError } from './errors.js';
/**
 * Short runc commands (list, kill, delete) against one private root. Each gets
 * a bare environment: nothing of ours (tokens, credentials) reaches runc or
 * the hooks it starts.
 */
export const RUNC_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
export class RuncCli {
    runcPath;
    root;
    constructor(runcPath, root) {
        this.runcPath = runcPath;
        this.root = root;
    }
    /** argv for `runc --root <root> ...args`. */
    argv(...args) {
        return ['--root', this.root, ...args];
    }
    exec(args, timeoutMs = 30_000) {
        return new Promise((resolve, reject) => {
            execFile(this.runcPath, this.argv(...args), { env: RUNC_ENV, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
                if (err)
                    reject(new SandboxError(`runc ${args[0]} failed: ${(stderr || err.message).trim().slice(0, 500)}`, { cause: err }));
                else
                    resolve({ stdout, stderr });
            });
        });
    }
    /** Ids of every container in the root (none when the root does not exist yet). */
    async list() {
        const { stdout } = await this.exec(['list', '--format', 'json']);
        const parsed = JSON.parse(stdout.trim() || 'null');
        return (parsed ?? []).map((c) => c.id);
    }
    /** SIGKILL to the container's init; with its own pid namespace, the kernel then kills every process in it. */
    async kill(id) {
        try {
            await this.exec(['kill', id, 'KILL'], 10_000);
            return true;
        }
        catch {
            return false;
        }
    }
    /** Kill and remove the container and its cgroup; a container that is already gone counts as success. */
    async forceDelete(id) {
        try {
            await this.exec(['delete', '--force', id]);
        }
        catch (err) {
            if (/does not exist|not exist|no such/i.test(String(err.message)))
                return;
            throw err;
        }
    }
}
//# sourceMappingURL=runc-cli.js.map