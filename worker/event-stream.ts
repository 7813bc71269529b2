/**
 * How a build's events sit in its Redis stream, for the writers (finish-build.ts
 * FINISH_LUA, events.ts) and the reader (api/producer.ts).
 */

/** Stream entry id of an event: the seq is the id, so XREAD after `<n>-0` resumes after event n. */
export function streamId(seq: number): string {
  return `${seq}-0`;
}

export function seqOfStreamId(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}

/** The one field of a stream entry: the event body as JSON, without `seq` (the entry id carries it). */
export const EVENT_FIELD = 'e';

/**
 * A Lua fragment that defines `nextSeq(stream, wanted)`: the seq an event
 * gets, `wanted` unless the stream already ends at or above it, then one past
 * its last entry. Every script that appends to a build's stream starts with
 * it, so an event written by a retried attempt, a late writer or the terminal
 * event can never collide with or fall behind an entry already there.
 */
export const NEXT_SEQ_LUA = `
local function nextSeq(stream, wanted)
  local seq = tonumber(wanted)
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if last[1] then
    local lastSeq = tonumber(string.match(last[1][1], '^(%d+)-'))
    if lastSeq >= seq then seq = lastSeq + 1 end
  end
  return seq
end
`;
