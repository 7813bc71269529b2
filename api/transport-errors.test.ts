import { Metadata, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { connectReason, ConnectError, MessageSizeError, transportError } from './transport-errors.js';

const ctx = { address: 'ci.example:7070', receiveLimitBytes: 8 << 20 };

describe('connectReason: grpc-js UNAVAILABLE details → a few words', () => {
  // Details as grpc-js 1.14 writes them (captured from real failed calls).
  it.each([
    ['No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ', 'connection refused'],
    ['No connection established. Last error: Error: connect EHOSTUNREACH 10.0.0.9:7070 (2026-12-04T17:01:11.675Z). Resolution note: ', 'no route to host'],
    ['Name resolution failed for target dns:nosuch.invalid:7070', 'the name does not resolve'],
    ['No connection established. Last error: Protocol error (2026-12-04T17:01:11.675Z). Resolution note: ', 'protocol error'],
    ['Connection dropped', 'connection dropped'],
    ['', 'no connection'],
  ])('%j → %s', (details, want) => {
    expect(connectReason(details)).toBe(want);
  });
});

describe('transportError', () => {
  it('an UNAVAILABLE status is a retryable ConnectError naming the address', () => {
    const err = transportError({ code: status.UNAVAILABLE, details: 'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:7070. Resolution note: ', metadata: new Metadata() }, ctx);
    expect(err).toBeInstanceOf(ConnectError);
    expect(err).toMatchObject({ code: 'UNAVAILABLE', retryable: true, message: 'cannot reach ci.example:7070: connection refused' });
  });

  it.each([
    ['Received message larger than max (10485812 vs 4194304)', 'a message of 10.0 MiB exceeds the server\'s limit of 4 MiB', 'server'],
    ['Received message larger than max (9437184 vs 8388608)', 'a message of 9 MiB exceeds the client\'s limit of 8 MiB', 'client'],
    ['Sent message larger than max (8388700 vs. 8388608)', 'a message of 8.0 MiB exceeds the server\'s limit of 8 MiB', 'server'],
  ])('RESOURCE_EXHAUSTED %j', (details, message, side) => {
    const err = transportError({ code: status.RESOURCE_EXHAUSTED, details }, ctx);
    expect(err).toBeInstanceOf(MessageSizeError);
    expect(err).toMatchObject({ code: 'LIMIT_EXCEEDED', message, side });
  });

  it('leaves other statuses to the generic mapping', () => {
    expect(transportError({ code: status.RESOURCE_EXHAUSTED, details: 'quota' }, ctx)).toBeUndefined();
    expect(transportError({ code: status.NOT_FOUND, details: 'x' }, ctx)).toBeUndefined();
  });
});
