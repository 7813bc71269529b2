import { describe, expect, it } from 'vitest';
import { sha256 } from '../core/digest.js';
import { RecentDocuments } from './recent-documents.js';
import type { Reference } from './reference.js';

const ref = (repository: string): Reference => ({ registry: 'reg.example', repository, tag: 'x' });
const doc = (text: string) => ({ digest: sha256(text), served: { bytes: Buffer.from(text), contentType: 'application/json' } });

describe('RecentDocuments', () => {
  it('gives a document back for its repository only, and forgets it once it is older than the ttl', () => {
    let now = 1_000;
    const recent = new RecentDocuments(60_000, 1 << 20, () => now);
    const a = doc('{"a":1}');
    recent.put(ref('lib/a'), a.digest, a.served);
    expect(recent.get(ref('lib/a'), a.digest)?.bytes.toString()).toBe('{"a":1}');
    expect(recent.get(ref('lib/a'), a.digest)?.contentType).toBe('application/json');
    // Another repository of the same registry has not served it to us.
    expect(recent.get(ref('lib/b'), a.digest)).toBeUndefined();
    now += 59_999;
    expect(recent.get(ref('lib/a'), a.digest)).toBeDefined();
    now += 1;
    expect(recent.get(ref('lib/a'), a.digest)).toBeUndefined();
  });

  it('holds at most its byte budget, dropping the oldest first; a document over the budget is not kept', () => {
    const recent = new RecentDocuments(60_000, 20);
    const [one, two, three] = [doc('0123456789'), doc('abcdefghij'), doc('ABCDEFGHIJ')];
    recent.put(ref('r'), one.digest, one.served);
    recent.put(ref('r'), two.digest, two.served);
    recent.put(ref('r'), three.digest, three.served);
    expect(recent.get(ref('r'), one.digest)).toBeUndefined();
    expect(recent.get(ref('r'), two.digest)).toBeDefined();
    expect(recent.get(ref('r'), three.digest)).toBeDefined();
    const big = doc('x'.repeat(21));
    recent.put(ref('r'), big.digest, big.served);
    expect(recent.get(ref('r'), big.digest)).toBeUndefined();
    expect(recent.get(ref('r'), three.digest)).toBeDefined();
  });
});
