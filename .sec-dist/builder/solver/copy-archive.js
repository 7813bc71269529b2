import { spawn } from 'node:child_process';
import { constants, createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { extractTar } from '../layers/index.js';
import { FileOpError } from './file-op-base.js';
const TAR_BLOCK = 512;
function compressionOf(head) {
    if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b)
        return 'gzip';
    if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh')
        return 'bzip2';
    if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])))
        return 'xz';
    if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528)
        return 'zstd';
    return 'none';
}
/** A tar header block with a valid checksum (unsigned or the historic signed sum); an all-zero block is an empty archive, not a tar. */
function isTarHeader(block) {
    if (block.length < TAR_BLOCK)
        return false;
    if (block.subarray(0, TAR_BLOCK).every((b) => b === 0))
        return false;
    const field = block.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/, '').trim();
    if (!/^[0-7]+$/.test(field))
        return false;
    const want = parseInt(field, 8);
    let unsigned = 0;
    let signed = 0;
    for (let i = 0; i < TAR_BLOCK; i++) {
        const b = i >= 148 && i < 156 ? 0x20 : block[i];
        unsigned += b;
        signed += b > 127 ? b - 256 : b;
    }
    return want === unsigned || want === signed;
}
/**
 * The decompressed bytes of a regular file. gzip is in-process; bzip2, xz and
 * zstd go through the system tools (Node has no decoders for them), fed on
 * stdin so the tool never opens a path of ours.
 */
export function openDecompressed(file, kind, signal) {
    // The caller lstat'ed `file` as a regular file inside its root; the stream reads it in 1 MiB chunks.
    const input = createReadStream(file, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) });
    if (kind === 'none')
        return input;
    if (kind === 'gzip') {
        const gunzip = createGunzip();
        input.on('error', (err) => gunzip.destroy(err));
        return input.pipe(gunzip);
    }
    const tool = { bzip2: 'bzip2', xz: 'xz', zstd: 'zstd' }[kind];
    const child = spawn(tool, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'], ...(signal ? { signal } : {}) });
    const out = new PassThrough();
    let stderr = '';
    child.stderr.on('data', (d) => {
        if (stderr.length < 4096)
            stderr += d.toString();
    });
    input.on('error', (err) => out.destroy(err));
    child.on('error', (err) => out.destroy(err));
    // An early reader close (detection) is not an error: stop the tool quietly.
    child.stdin.on('error', () => { });
    input.pipe(child.stdin);
    child.stdout.pipe(out, { end: false });
    child.on('close', (code, sig) => {
        if (code === 0 || out.destroyed)
            out.end();
        else
            out.destroy(new FileOpError(`${tool} -d failed (${code ?? sig}): ${stderr.trim()}`, file));
    });
    out.on('close', () => {
        if (child.exitCode === null)
            child.kill();
    });
    return out;
}
/** The compression of `file` when it is a tar archive (plain or compressed), else undefined. `file` must be a regular file (lstat first). */
export async function detectArchive(file, signal) {
    // O_NONBLOCK: should a FIFO be swapped in after the caller's lstat, opening must not hang.
    const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    let head;
    try {
        if (!(await fh.stat()).isFile())
            return undefined;
        const buf = Buffer.alloc(TAR_BLOCK);
        const { bytesRead } = await fh.read(buf, 0, TAR_BLOCK, 0);
        head = buf.subarray(0, bytesRead);
    }
    finally {
        await fh.close();
    }
    const kind = compressionOf(head);
    if (kind === 'none')
        return isTarHeader(head) ? 'none' : undefined;
    const first = await readPrefix(openDecompressed(file, kind, signal), TAR_BLOCK).catch(() => Buffer.alloc(0));
    return isTarHeader(first) ? kind : undefined;
}
async function readPrefix(stream, n) {
    const chunks = [];
    let size = 0;
    try {
        for await (const chunk of stream) {
            chunks.push(chunk);
            size += chunk.length;
            if (size >= n)
                break;
        }
    }
    finally {
        stream.destroy();
    }
    return Buffer.concat(chunks).subarray(0, n);
}
/** ADD of a local archive: unpack into `destDir` (a real directory inside the root), owners and modes as in the archive. */
export async function extractArchive(file, destDir, signal) {
    // extractTar recognises the compression itself; it gets the raw bytes.
    const stream = openDecompressed(file, 'none', signal);
    try {
        await extractTar(stream, destDir, { whiteouts: false, ...(signal ? { signal } : {}) });
    }
    finally {
        stream.destroy();
    }
}
//# sourceMappingURL=copy-archive.js.map