import { describe, expect, it } from 'vitest';
import { anySignal, AsyncStack, throwIfAborted } from './dispose.js';

describe('AsyncStack', () => {
  it('releases in reverse order of acquisition', async () => {
    const log: string[] = [];
    const stack = new AsyncStack();
    stack.defer(() => log.push('a'));
    stack.defer(async () => {
      await new Promise((r) => setTimeout(r, 5));
      log.push('b');
    });
    stack.defer(() => log.push('c'));
    await stack.dispose();
    expect(log).toEqual(['c', 'b', 'a']);
  });

  it('runs every release even when some fail, and rethrows the first failure', async () => {
    const log: string[] = [];
    const stack = new AsyncStack();
    stack.defer(() => log.push('first acquired'));
    stack.defer(() => {
      throw new Error('second');
    });
    stack.defer(async () => {
      log.push('third acquired');
      throw new Error('third');
    });
    // Released first, so its error is the one rethrown.
    await expect(stack.dispose()).rejects.toThrow('third');
    expect(log).toEqual(['third acquired', 'first acquired']);
  });

  it('disposes once; a second dispose is a no-op and defer afterwards throws', async () => {
    let n = 0;
    const stack = new AsyncStack();
    stack.defer(() => n++);
    await stack.dispose();
    await stack.dispose();
    expect(n).toBe(1);
    expect(() => stack.defer(() => n++)).toThrow(/disposed/);
  });

  it('move() hands the releases to the caller once setup succeeded', async () => {
    const log: string[] = [];
    async function setup(fail: boolean): Promise<AsyncStack> {
      await using stack = new AsyncStack();
      stack.defer(() => log.push('unmount'));
      stack.defer(() => log.push('rmdir'));
      if (fail) throw new Error('setup failed');
      return stack.move();
    }
    await expect(setup(true)).rejects.toThrow('setup failed');
    expect(log).toEqual(['rmdir', 'unmount']);

    log.length = 0;
    const owned = await setup(false);
    expect(log).toEqual([]); // the emptied stack released nothing
    await owned.dispose();
    expect(log).toEqual(['rmdir', 'unmount']);
  });

  it('use() registers async and sync disposables and ignores null', async () => {
    const log: string[] = [];
    const stack = new AsyncStack();
    const a = stack.use({
      async [Symbol.asyncDispose]() {
        log.push('async');
      },
    });
    stack.use(null);
    stack.use(undefined);
    stack.use({
      [Symbol.dispose]() {
        log.push('sync');
      },
    });
    expect(a).toBeDefined();
    await stack[Symbol.asyncDispose]();
    expect(log).toEqual(['sync', 'async']);
  });

  it('use() calls dispose with the value as `this`', async () => {
    class Res {
      closed = false;
      async [Symbol.asyncDispose]() {
        this.closed = true;
      }
    }
    const stack = new AsyncStack();
    const r = stack.use(new Res());
    await stack.dispose();
    expect(r.closed).toBe(true);
  });
});

describe('signals', () => {
  it('anySignal aborts when any input does, with its reason', () => {
    const a = new AbortController();
    const b = new AbortController();
    const s = anySignal([a.signal, undefined, b.signal]);
    expect(s.aborted).toBe(false);
    b.abort(new Error('b went'));
    expect(s.aborted).toBe(true);
    expect((s.reason as Error).message).toBe('b went');
  });

  it('anySignal with one signal returns it, and a timeout aborts on its own', async () => {
    const a = new AbortController();
    expect(anySignal([a.signal])).toBe(a.signal);
    const t = anySignal([undefined], 20);
    expect(t.aborted).toBe(false);
    await new Promise((r) => setTimeout(r, 60));
    expect(t.aborted).toBe(true);
    expect((t.reason as Error).name).toBe('TimeoutError');
  });

  it('throwIfAborted throws the reason, and accepts undefined', () => {
    throwIfAborted(undefined);
    const a = new AbortController();
    throwIfAborted(a.signal);
    a.abort(new Error('stop'));
    expect(() => throwIfAborted(a.signal)).toThrow('stop');
  });
});
