import { BuildliteError } from '../core/errors.js';
/**
 * A registry said no, or could not be reached. 401 becomes UNAUTHENTICATED and
 * 403 PERMISSION_DENIED, so callers can tell "log in" from "try again".
 * Never carries credentials: URLs are redacted and echoed bodies pass through `redactSecrets`.
 */
export class RegistryError extends BuildliteError {
    code;
    retryable;
    status;
    method;
    url;
    diagnostics;
    constructor(message, init) {
        super(message, init.cause === undefined ? undefined : { cause: init.cause });
        this.status = init.status;
        this.method = init.method;
        this.url = init.url;
        this.diagnostics = init.diagnostics ?? [];
        this.code = init.denied || init.status === 403 ? 'PERMISSION_DENIED' : init.status === 401 ? 'UNAUTHENTICATED' : 'REGISTRY';
        this.retryable = init.retryable ?? isRetryableStatus(init.status);
    }
    static fromResponse(init) {
        const what = init.action ? `${init.action}: ` : '';
        const reasons = (init.diagnostics ?? []).map((d) => `${d.code}: ${d.message}`).join('; ');
        const status = init.status === undefined ? 'no response' : `HTTP ${init.status}${STATUS_TEXT[init.status] ? ` ${STATUS_TEXT[init.status]}` : ''}`;
        return new RegistryError(`${what}${init.method} ${init.url}: ${status}${reasons ? ` (${reasons})` : ''}`, init);
    }
    details() {
        return {
            method: this.method,
            url: this.url,
            ...(this.status !== undefined ? { status: this.status } : {}),
            ...(this.diagnostics.length ? { registryCodes: this.diagnostics.map((d) => d.code).join(',') } : {}),
        };
    }
}
export class InvalidOptionError extends BuildliteError {
    option;
    code = 'INVALID_OPTION';
    constructor(option, reason) {
        super(`invalid option ${option}: ${reason}`);
        this.option = option;
    }
}
/** A document from the registry that we refuse to use (wrong type, malformed, ambiguous). */
export class InvalidDocumentError extends BuildliteError {
    code = 'REGISTRY';
}
const STATUS_TEXT = {
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    405: 'Method Not Allowed',
    408: 'Request Timeout',
    413: 'Payload Too Large',
    416: 'Range Not Satisfiable',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    502: 'Bad Gateway',
    503: 'Service Unavailable',
    504: 'Gateway Timeout',
};
export function isRetryableStatus(status) {
    return status === 408 || status === 429 || (status !== undefined && status >= 500 && status !== 501 && status !== 505);
}
/**
 * A URL fit for messages: no user info, query values replaced (upload `_state`
 * and signed-URL signatures are bearer secrets of their own).
 */
export function redactUrl(url) {
    let u;
    try {
        u = new URL(String(url));
    }
    catch {
        return '<unparseable URL>';
    }
    u.username = '';
    u.password = '';
    const keys = [...new Set(u.searchParams.keys())];
    if (keys.length === 0)
        return u.toString();
    const q = keys.map((k) => `${encodeURIComponent(k)}=REDACTED`).join('&');
    return `${u.origin}${u.pathname}?${q}`;
}
/** Replace every known secret (and its base64 forms) in text from the wire. */
export function redactSecrets(text, secrets) {
    let out = text;
    for (const s of secrets) {
        if (s.length < 3)
            continue;
        out = out.split(s).join('***');
    }
    return out;
}
const MAX_DIAGNOSTICS = 10;
const MAX_MESSAGE = 500;
/** Parse the distribution-spec error JSON; anything else becomes one diagnostic of plain text. */
export function parseDiagnostics(body, secrets) {
    const clean = (s) => redactSecrets(String(s ?? ''), secrets)
        // Terminal control characters from a hostile registry must not reach a user's tty.
        .replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ')
        .slice(0, MAX_MESSAGE);
    try {
        const parsed = JSON.parse(body);
        if (Array.isArray(parsed.errors)) {
            return parsed.errors.slice(0, MAX_DIAGNOSTICS).map((e) => {
                const detail = e.detail === undefined || e.detail === null ? '' : typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail);
                const message = clean(e.message) + (detail && detail !== '{}' && detail !== 'null' ? ` (${clean(detail)})` : '');
                return { code: clean(e.code) || 'UNKNOWN', message };
            });
        }
    }
    catch {
        // not JSON: fall through
    }
    const text = clean(body.trim());
    return text ? [{ code: 'UNKNOWN', message: text }] : [];
}
//# sourceMappingURL=errors.js.map