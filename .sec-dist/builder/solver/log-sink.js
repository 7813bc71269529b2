import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
export const LOG_DEFAULTS = {
    // 4 MiB in the event stream: BuildKit clips at 2 MiB by default; users asked for more, not less.
    eventCap: 4 * 1024 * 1024,
    // The file keeps much more, but a step printing forever must not fill the disk.
    fileCap: 256 * 1024 * 1024,
    // Logs of builds older than this are removed when a later build starts writing logs.
    maxAgeMs: 7 * 24 * 3600 * 1000,
};
/**
 * Step output into log events and into a file. The event stream carries at
 * most `cap` bytes per step and then says once where the full log is, so one
 * chatty step cannot flood a terminal, Redis or memory, and nothing is lost
 * silently. Secret values are masked in both.
 */
export class LogSink {
    vertex;
    emit;
    cap;
    fileOpts;
    sent = 0;
    clipped = false;
    secrets;
    file;
    filePath;
    fileBytes = 0;
    fileClipped = false;
    constructor(vertex, emit, secrets, cap = LOG_DEFAULTS.eventCap, fileOpts) {
        this.vertex = vertex;
        this.emit = emit;
        this.cap = cap;
        this.fileOpts = fileOpts;
        this.secrets = secrets.map((s) => s.toString('utf8')).filter((s) => s.length >= 4);
    }
    /** Where the full log of this step is (or will be once it prints something). */
    get logPath() {
        if (!this.fileOpts)
            return undefined;
        this.filePath ??= path.join(buildLogDir(this.fileOpts.dir, this.fileOpts.build), `${this.vertex.replace(':', '-')}.log`);
        return this.filePath;
    }
    write(stream, chunk) {
        let data = chunk.toString('utf8');
        for (const s of this.secrets)
            data = data.split(s).join('****');
        this.toFile(data);
        if (this.clipped)
            return;
        if (this.sent + chunk.length > this.cap) {
            this.clipped = true;
            const where = this.logPath ? `; the full log is in ${this.logPath}` : '';
            this.emit({ type: 'log', vertex: this.vertex, stream: 'stderr', data: `\n[output clipped: this step printed more than ${mib(this.cap)} to the build log${where}]\n` });
            return;
        }
        this.sent += chunk.length;
        this.emit({ type: 'log', vertex: this.vertex, stream, data });
    }
    toFile(data) {
        if (!this.fileOpts || this.fileClipped)
            return;
        try {
            if (!this.file) {
                const p = this.logPath;
                mkdirSync(path.dirname(p), { recursive: true, mode: 0o700 });
                this.file = createWriteStream(p, { mode: 0o600 });
                // A full disk must not fail the build: the events still carry the output.
                this.file.on('error', () => {
                    this.fileClipped = true;
                });
            }
            const cap = this.fileOpts.fileCap ?? LOG_DEFAULTS.fileCap;
            const bytes = Buffer.byteLength(data);
            if (this.fileBytes + bytes > cap) {
                this.fileClipped = true;
                this.file.write(`\n[log file clipped at ${mib(cap)}]\n`);
                return;
            }
            this.fileBytes += bytes;
            this.file.write(data);
        }
        catch {
            this.fileClipped = true;
        }
    }
    end() {
        this.file?.end();
    }
}
function mib(n) {
    return `${Math.round(n / (1024 * 1024))} MiB`;
}
const buildDirs = new WeakMap();
const swept = new Set();
/** One directory per build, named by time so `ls` sorts them; old ones are removed the first time a process writes logs. */
function buildLogDir(dir, build) {
    let d = buildDirs.get(build);
    if (!d) {
        d = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`);
        buildDirs.set(build, d);
        if (!swept.has(dir)) {
            swept.add(dir);
            sweepOldLogs(dir, Date.now() - LOG_DEFAULTS.maxAgeMs);
        }
    }
    return d;
}
function sweepOldLogs(dir, before) {
    let names;
    try {
        names = readdirSync(dir);
    }
    catch {
        return;
    }
    for (const n of names) {
        const p = path.join(dir, n);
        try {
            if (statSync(p).mtimeMs < before)
                rmSync(p, { recursive: true, force: true });
        }
        catch {
            // Another process may be removing it too.
        }
    }
}
//# sourceMappingURL=log-sink.js.map