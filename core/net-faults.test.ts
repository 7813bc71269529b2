import { describe, expect, it } from 'vitest';
import { CodedError } from './errors.js';
import { isTransientNetError, NET_TIMEOUT_DEFAULTS, netTimeouts, NetTimeoutError, parseNetTimeouts } from './net-faults.js';

describe('network stall limits', () => {
  it.each([
    ['headers=30s', { headersMs: 30_000 }],
    ['connect=5s,headers=1m,idle=90s', { connectMs: 5000, headersMs: 60_000, idleMs: 90_000 }],
    [' idle=1m30s , connect=500ms ', { idleMs: 90_000, connectMs: 500 }],
    ['', {}],
  ])('parses %j', (spec, want) => {
    expect(parseNetTimeouts(spec)).toEqual(want);
  });

  it.each([
    ['read=1s', /unknown timeout "read"/],
    ['headers', /want headers=DURATION/],
    ['headers=soon', /not a duration/],
    ['headers=1s,headers=2s', /headers given twice/],
  ])('refuses %j', (spec, why) => {
    expect(() => parseNetTimeouts(spec)).toThrow(why);
  });

  it('fills defaults and checks bounds, naming the option', () => {
    expect(netTimeouts(undefined, 'x')).toEqual(NET_TIMEOUT_DEFAULTS);
    expect(netTimeouts({ headersMs: 1000, idleMs: undefined }, 'x')).toEqual({ ...NET_TIMEOUT_DEFAULTS, headersMs: 1000 });
    expect(() => netTimeouts({ connectMs: 50 }, 'opt.t')).toThrow(/^opt\.t: connect timeout must be a whole number of ms in \[100, 3600000\], got 50$/);
    expect(() => netTimeouts({ idleMs: 4_000_000 }, 'x')).toThrow(/idle timeout/);
  });

  it('says what stalled, where, after how long; a stall and a reset are transient, a refusal is not', () => {
    const stall = new NetTimeoutError('headers', 'reg.example.com:5000', 30_000);
    expect(stall.message).toBe('timed out after 30s waiting for response headers from reg.example.com:5000');
    expect(new NetTimeoutError('body', 'h', 1500).message).toBe('timed out after 1.5s with no progress receiving the response body from h');
    expect(stall.code).toBe('LIMIT_EXCEEDED');
    expect(isTransientNetError(stall)).toBe(true);
    expect(isTransientNetError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isTransientNetError(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'EPIPE' }) }))).toBe(true);
    expect(isTransientNetError(Object.assign(new Error('nope'), { code: 'ENOTFOUND' }))).toBe(false);
    expect(isTransientNetError(new CodedError('PERMISSION_DENIED', 'no'))).toBe(false);
  });
});
