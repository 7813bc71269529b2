import { describe, expect, it } from 'vitest';
import { TokenAuth } from './auth.js';

describe('token entitlements', () => {
  it('knows network.host and security.insecure, and nothing else', () => {
    const auth = new TokenAuth([{ token: 'a'.repeat(24), client: 'ci', entitlements: ['network.host', 'security.insecure'] }]);
    expect(auth.size).toBe(1);
    expect(() => new TokenAuth([{ token: 'b'.repeat(24), client: 'ci', entitlements: ['device'] }])).toThrow(/unknown entitlement "device" \(known: network.host, security.insecure\)/);
  });
});
