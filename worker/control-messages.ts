/**
 * A control request the API broadcasts to every worker on the control
 * channel (redis-keys.ts); each answers on `replyKey` (a list): control.ts.
 */
export type ControlRequest =
  | { readonly op: 'du'; readonly replyKey: string }
  | { readonly op: 'prune'; readonly replyKey: string; readonly all: boolean; readonly keepDurationMs?: number; readonly keepStorageBytes?: number };

export type ControlReply =
  | { readonly worker: string; readonly op: 'du'; readonly total: number; readonly kinds: ReadonlyArray<{ kind: string; count: number; size: number }>; readonly error?: string }
  | { readonly worker: string; readonly op: 'prune'; readonly freedBytes: number; readonly removed: number; readonly error?: string };
