import { describe, expect, it } from 'vitest';
import type { BuildEventBody } from '../../core/build.js';
import { parseDigest } from '../../core/digest.js';
import { LogSink } from './log-sink.js';

const V = parseDigest(`sha256:${'a'.repeat(64)}`);

function collect(secrets: string[], cap?: number) {
  const events: BuildEventBody[] = [];
  const sink = new LogSink(V, (e) => events.push(e), secrets.map((s) => Buffer.from(s)), cap);
  const text = () => events.map((e) => (e.type === 'log' ? e.data : '')).join('');
  return { sink, events, text };
}

describe('LogSink', () => {
  it('masks a secret that arrives split across chunks', () => {
    const { sink, text } = collect(['hunter2-top-secret']);
    sink.write('stdout', Buffer.from('token=hunter2-'));
    sink.write('stdout', Buffer.from('top-secret and more\n'));
    sink.end();
    expect(text()).toBe('token=**** and more\n');
    expect(text()).not.toContain('hunter2');
  });

  it('keeps a UTF-8 character whole when its bytes straddle two chunks', () => {
    const { sink, text } = collect([]);
    const bytes = Buffer.from('grüße\n');
    sink.write('stdout', bytes.subarray(0, 3)); // splits the ü
    sink.write('stdout', bytes.subarray(3));
    sink.end();
    expect(text()).toBe('grüße\n');
  });

  it('says once that output was clipped, and sends nothing after', () => {
    const { sink, events } = collect([], 10);
    sink.write('stdout', Buffer.from('0123456789'));
    sink.write('stdout', Buffer.from('more'));
    sink.write('stdout', Buffer.from('and more'));
    sink.end();
    const logs = events.filter((e) => e.type === 'log');
    expect(logs).toHaveLength(2);
    expect(logs[1]?.type === 'log' && logs[1].data).toMatch(/output clipped/);
  });
});
