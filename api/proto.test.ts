import { describe, expect, it } from 'vitest';
import type { BuildEvent } from '../core/build.js';
import { eventFromPb, eventToPb } from './proto.js';

describe('warning events on the wire', () => {
  it.each<BuildEvent>([
    { seq: 3, type: 'warning', message: 'plain', range: { file: 'Dockerfile', startLine: 2, endLine: 2 } },
    {
      seq: 4,
      type: 'warning',
      message: 'CMD in shell form ...',
      rule: 'JSONArgsRecommended',
      url: 'https://docs.docker.com/go/dockerfile/rule/json-args-recommended/',
      range: { file: 'Dockerfile', startLine: 5, endLine: 5, startColumn: 1, endColumn: 15 },
    },
  ])('a build check keeps its rule and documentation: %j', (ev) => {
    expect(eventFromPb(eventToPb(ev))).toEqual(ev);
  });
});
