/**
 * Credentials out of text meant for people (errors, logs, step names,
 * Dockerfile excerpts). URLs may carry user info (`https://user:token@host/`);
 * it is replaced wherever a URL appears in the text, whether or not the text
 * parses as a URL. References are core/reference.ts's redactReference.
 */

// scheme://, then user info: everything up to the last `@` before the host's end (a password may hold `@`).
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]*(?:@[^\s/?#@]*)*@/gi;

export function redactUrlCredentials(text: string): string {
  return text.replace(URL_USERINFO, '$1***@');
}
