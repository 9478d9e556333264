/**
 * Removes secrets and personal data from what is about to be logged, and turns any value into a
 * plain JSON-safe tree on the way: whatever the application hands over (cycles, throwing getters,
 * hostile proxies, megabyte strings), the result is bounded and the walk never throws.
 *
 * Every pattern here runs in linear time: bounded quantifiers, no nested quantifiers, and no
 * alternation whose branches can match the same text under a quantifier. An ordinary string
 * costs two scans: one for a hint of any secret, one for card numbers.
 */
export interface Redactor {
  /** A redacted, JSON-safe copy of `input`. Never throws. */
  value(input: unknown): unknown;
  /** `input` with secret-looking substrings replaced, and cut past 16 KiB. */
  string(input: string): string;
  /**
   * As `string`, for values that repeat across calls (a service sees a handful of user agents):
   * the results for the last few hundred distinct short inputs are remembered.
   */
  repeated(input: string): string;
  /**
   * As `string`, for an error's message or stack, which often quote data: also `key: value` and
   * `key=value` pairs whose key is sensitive (a Prisma validation error prints the query's
   * arguments, `password: "hunter2"`), and the fragment of input a JSON parse error quotes.
   */
  errorText(input: string): string;
}

export interface RedactorOptions {
  /** Keys redacted on top of the built-in list, matched like them (case and separators ignored). */
  extraKeys: readonly string[];
}

const REDACTED = '[REDACTED]';
const CIRCULAR = '[Circular]';
const UNREADABLE = '[Unreadable]';
const TRUNCATED = '[Truncated]';

/** Longest string kept; the rest is cut after redaction and replaced by a marker. */
const MAX_STRING_LENGTH = 16 * 1024;
/** Longest prefix of a string that patterns look at; bounds the work on a huge string. */
const MAX_SCANNED_LENGTH = 64 * 1024;
/** Objects nested deeper than this become "[Truncated]". */
const MAX_DEPTH = 10;
/** Items kept per array, set, map or object. */
const MAX_BREADTH = 100;
/** Values visited per `value()` call; past it, values become "[Truncated]". */
const MAX_NODES = 5000;
/** String characters scanned per `value()` call; past it, strings become "[Truncated]". */
const MAX_SCANNED_CHARS = 1024 * 1024;
/** Distinct inputs `repeated()` remembers, and the longest it remembers. */
const MAX_REPEATED = 256;
const MAX_REPEATED_LENGTH = 512;
/** Key decisions cached; keys are usually a small repeating set, but not when data is used as keys. */
const MAX_CACHED_KEYS = 4096;
/** Longer keys are not names of secrets; they skip normalisation. */
const MAX_SENSITIVE_KEY_LENGTH = 64;
/** Longer keys are not cached, so the cache cannot hold on to megabytes of odd keys. */
const MAX_CACHED_KEY_LENGTH = 256;

/**
 * Compared after lower-casing and dropping everything but letters and digits, so `api-key`,
 * `api_key`, `apiKey` and `API_KEY` are one name.
 */
const BUILT_IN_KEYS: readonly string[] = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'password',
  'passwd',
  'secret',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'api_key',
  'apikey',
  'x-api-key',
  'client_secret',
  'private_key',
  'credentials',
  'session',
  'session_id',
  'ssn',
  'card_number',
  'credit_card',
  'cvv',
  'cvc',
];

/**
 * Properties libraries hang on errors that hold whole payloads, whose secrets sit inside strings
 * no key rule can see: body-parser's `body` and `rawBody` (the raw request body of a malformed
 * JSON request, passwords included), HTTP clients' `config`, `request` and `response` (headers,
 * bodies). They are left out of logged errors.
 */
const ERROR_PAYLOAD_KEYS: ReadonlySet<string> = new Set(['body', 'rawBody', 'config', 'request', 'response']);

/** Keys ending with these are secrets too: `db_password`, `csrfToken`, `stripe_secret`, `aws_secret_access_key`. */
const SENSITIVE_SUFFIXES: readonly string[] = [
  'password',
  'passwd',
  'secret',
  'token',
  'apikey',
  'privatekey',
  'secretkey',
  'accesskey',
];

// scheme://userinfo@ — the scheme is bounded and literal '://' ends it; userinfo excludes '@' and '/'.
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]{1,31}:\/\/)[^\s/?#@]{1,512}@/gi;
// Short words after "bearer" are prose ("bearer of"); tokens are longer.
const BEARER = /\b([Bb]earer|BEARER)\s{1,16}[A-Za-z0-9\-._~+/]{8,4096}={0,2}/g;
// Three base64url segments; the class excludes '.', so each segment ends where the dot is.
const JWT = /\beyJ[A-Za-z0-9_-]{4,8192}\.[A-Za-z0-9_-]{2,16384}\.[A-Za-z0-9_-]{0,8192}/g;
// One branch per vendor, each starting with its own literal prefix, so at most one branch gets
// past the first few characters at any position.
const API_KEY = new RegExp(
  [
    String.raw`\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,247}\b`, // Stripe
    String.raw`\bgh[pousr]_[A-Za-z0-9]{36,251}\b`, // GitHub
    String.raw`\bgithub_pat_[A-Za-z0-9_]{22,244}\b`,
    String.raw`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`, // AWS access key id
    String.raw`\bxox[abposr]-[A-Za-z0-9-]{10,250}`, // Slack
    String.raw`\bsk-[A-Za-z0-9_-]{20,250}`, // OpenAI, Anthropic
    String.raw`\bglpat-[A-Za-z0-9_-]{20,250}`, // GitLab
    String.raw`\bAIza[0-9A-Za-z_-]{35}\b`, // Google
    String.raw`\bnpm_[A-Za-z0-9]{36}\b`,
  ].join('|'),
  'g',
);
const SHORTEST_API_KEY = 20;
// A query parameter: the name excludes '=' and the value excludes '&', so both end deterministically.
/**
 * `key:` or `key=` in prose, the key bare or quoted; the key is checked like an object's key, and
 * only a sensitive one's value (VALUE, read right after) is consumed, so that a pair inside
 * another's value (`refused: api_key=...`) is still found. Bounded quantifiers keep both linear.
 */
const KEY_SEPARATOR = /(["']?)([A-Za-z][A-Za-z0-9_.-]{0,63})\1\s{0,4}[:=]\s{0,4}/g;
/** A quoted value, or a bare one up to a separator. */
const VALUE = /"(?:[^"\\\n]|\\.){0,4096}"|'(?:[^'\\\n]|\\.){0,4096}'|[^\s"',;&}\])]{1,4096}/y;
/** V8's JSON.parse message quotes the input around the bad token: `Unexpected token 'h', "{"password": hunter2}" is not valid JSON`. */
const JSON_PARSE_FRAGMENT =
  /(Unexpected token .{1,16}?, )(?:\.\.\.)?"[\s\S]{0,4096}?"(?:\.\.\.)?( is not valid JSON)/g;

const QUERY_PARAMETER = /([?&;])([A-Za-z0-9_.\-[\]]{1,64})=([^&#;\s"'<>]{1,4096})/g;
// The TLD is letters only, so "pino@10.4.0" is a package, not an address. The optional middle
// labels and the TLD can both match a label, but each label costs one bounded backtrack.
const EMAIL = /[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,63}\b/g;
// 13 to 19 digits with single spaces or dashes between them. Card numbers start with 2-6 (IIN
// ranges), which keeps epoch-millisecond timestamps (1…) out. The separator is optional but
// the next digit decides whether it was there, so there is one way to match.
const CARD = /\b[2-6]\d(?:[ -]?\d){11,17}\b/g;
// Something every pattern but CARD needs to see; one scan with no quantifier turns an ordinary
// string away from all of them.
const SECRET_HINT =
  /[@=]|eyJ|earer|EARER|[sr]k_|gh[pousr]_|github_pat_|A[KS]IA|xox[abposr]-|sk-|glpat-|AIza|npm_/;
// Shorter strings cannot hold any pattern above ("a@b.co" is the shortest).
const SHORTEST_SECRET = 6;

function normaliseKey(key: string): string {
  return key.toLowerCase().replace(/[^a-z0-9]/g, '');
}

function isLuhnValid(candidate: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = candidate.length - 1; i >= 0; i--) {
    const code = candidate.charCodeAt(i);
    if (code < 48 || code > 57) continue;
    let digit = code - 48;
    if (double) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
    double = !double;
  }
  return sum % 10 === 0;
}

function maskCard(match: string): string {
  return isLuhnValid(match) ? '[CARD]' : match;
}

function describeBinary(value: ArrayBufferView | ArrayBuffer): string {
  if (Buffer.isBuffer(value)) return `[Buffer: ${value.byteLength} bytes]`;
  const tag = Object.prototype.toString.call(value).slice(8, -1);
  return `[${tag}: ${value.byteLength} bytes]`;
}

/** Assigns without letting a `__proto__` key replace the copy's prototype. */
function setEntry(target: Record<string, unknown>, key: string, entry: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, {
      value: entry,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else {
    target[key] = entry;
  }
}

/** Per `value()` call, so a getter that logs while being copied gets a walk of its own. */
interface Walk {
  nodes: number;
  scannedChars: number;
  readonly ancestors: object[];
}

const SAFE_ERROR_MESSAGE = Symbol.for('@sextant/core.safeErrorMessage');

/**
 * Gives an error the message logs and spans show instead of its own, for an adapter that knows
 * the message quotes data no pattern can tell apart (a Prisma error prints the query's values).
 * The error is otherwise untouched: the application still sees its own message. Never throws.
 */
export function setSafeErrorMessage(error: unknown, message: string): void {
  try {
    if (typeof error === 'object' && error !== null) {
      Object.defineProperty(error, SAFE_ERROR_MESSAGE, {
        value: message,
        configurable: true,
        enumerable: false,
      });
    }
  } catch {
    // A frozen error keeps its own message, redacted by pattern as any other.
  }
}

/** The message set by {@link setSafeErrorMessage}, if any. */
function safeErrorMessage(error: unknown): string | undefined {
  try {
    const message = (error as { [SAFE_ERROR_MESSAGE]?: unknown } | null)?.[SAFE_ERROR_MESSAGE];
    return typeof message === 'string' ? message : undefined;
  } catch {
    return undefined;
  }
}

const FRAME_LINE = /^\s{4}at /;

/** `Type: message` and the stack's `at ...` lines only: a stack's header repeats the message. */
function stackWithMessage(type: string, message: string, stack: string | undefined): string {
  const frames = typeof stack === 'string' ? stack.split('\n').filter((line) => FRAME_LINE.test(line)) : [];
  return [`${type}: ${message}`, ...frames].join('\n');
}

/**
 * What a span records of an error: the error itself, or, when an adapter set a safe message for it
 * (`setSafeErrorMessage`), that message and the stack's frames only.
 */
export function exportedException(error: Error): Error {
  const safe = safeErrorMessage(error);
  if (safe === undefined) return error;
  const type = error.constructor?.name || error.name || 'Error';
  return { name: type, message: safe, stack: stackWithMessage(type, safe, error.stack) };
}

export function createRedactor(options: RedactorOptions): Redactor {
  const sensitiveKeys = new Set([...BUILT_IN_KEYS, ...options.extraKeys].map(normaliseKey));
  /** Key → the name to write, or `null` when its value is redacted. */
  const keyDecisions = new Map<string, string | null>();

  function decideKey(key: string): string | null {
    const cached = keyDecisions.get(key);
    if (cached !== undefined) return cached;
    let decision: string | null = key;
    if (key.length <= MAX_SENSITIVE_KEY_LENGTH) {
      const normalised = normaliseKey(key);
      if (sensitiveKeys.has(normalised) || SENSITIVE_SUFFIXES.some((suffix) => normalised.endsWith(suffix))) {
        decision = null;
      }
    }
    // Data used as keys (a map by e-mail address) is personal data too.
    if (decision !== null) decision = redactString(key);
    if (keyDecisions.size < MAX_CACHED_KEYS && key.length <= MAX_CACHED_KEY_LENGTH)
      keyDecisions.set(key, decision);
    return decision;
  }

  function redactQueryParameter(match: string, separator: string, name: string): string {
    return decideKey(name) === null ? `${separator}${name}=${REDACTED}` : match;
  }

  function redactPatterns(text: string): string {
    let result = text;
    if (SECRET_HINT.test(result)) {
      const hasAt = result.indexOf('@') !== -1;
      if (hasAt && result.indexOf('://') !== -1) result = result.replace(URL_CREDENTIALS, `$1${REDACTED}@`);
      if (result.indexOf('earer') !== -1 || result.indexOf('EARER') !== -1) {
        result = result.replace(BEARER, `$1 ${REDACTED}`);
      }
      if (result.indexOf('eyJ') !== -1) result = result.replace(JWT, '[JWT]');
      if (result.length >= SHORTEST_API_KEY) result = result.replace(API_KEY, '[API_KEY]');
      if (result.indexOf('=') !== -1) result = result.replace(QUERY_PARAMETER, redactQueryParameter);
      if (hasAt) result = result.replace(EMAIL, '[EMAIL]');
    }
    // No pre-check: counting digits first costs more than this regex, whose leading [2-6]\d
    // turns most positions away at once.
    return result.replace(CARD, maskCard);
  }

  function redactString(input: string): string {
    if (input.length < SHORTEST_SECRET) return input;
    // Patterns run before the cut, so a secret straddling MAX_STRING_LENGTH is still recognised whole.
    const scanned = input.length > MAX_SCANNED_LENGTH ? input.slice(0, MAX_SCANNED_LENGTH) : input;
    const redacted = redactPatterns(scanned);
    if (redacted.length <= MAX_STRING_LENGTH && scanned === input) return redacted;
    return `${redacted.slice(0, MAX_STRING_LENGTH)}...[Truncated: ${input.length} chars]`;
  }

  function copyString(text: string, walk: Walk): string {
    walk.scannedChars += Math.min(text.length, MAX_SCANNED_LENGTH);
    if (walk.scannedChars > MAX_SCANNED_CHARS) return TRUNCATED;
    return redactString(text);
  }

  function copyErrorText(text: string, walk: Walk): string {
    walk.scannedChars += Math.min(text.length, MAX_SCANNED_LENGTH);
    if (walk.scannedChars > MAX_SCANNED_CHARS) return TRUNCATED;
    return redactErrorText(text);
  }

  function copyEntries(
    target: Record<string, unknown>,
    source: object,
    keys: readonly string[],
    depth: number,
    walk: Walk,
  ): void {
    const kept = Math.min(keys.length, MAX_BREADTH);
    for (let i = 0; i < kept; i++) {
      const key = keys[i]!;
      const name = decideKey(key);
      if (name === null) {
        // The value is not even read: a getter behind a secret's name stays untouched.
        setEntry(target, key, REDACTED);
        continue;
      }
      let entry: unknown;
      try {
        entry = (source as Record<string, unknown>)[key];
      } catch {
        setEntry(target, name, UNREADABLE);
        continue;
      }
      const copied = copy(entry, depth + 1, walk, true);
      if (copied !== undefined) setEntry(target, name, copied);
    }
    if (keys.length > kept) target[TRUNCATED] = `${keys.length - kept} more keys`;
  }

  function copyError(error: Error, depth: number, walk: Walk): Record<string, unknown> {
    const result: Record<string, unknown> = {};
    const read = (fn: () => unknown): unknown => {
      try {
        return fn();
      } catch {
        return UNREADABLE;
      }
    };
    const type = read(() => error.constructor?.name || error.name);
    result.type = typeof type === 'string' ? type : 'Error';
    const safe = safeErrorMessage(error);
    const message = safe ?? read(() => error.message);
    result.message =
      typeof message === 'string' ? copyErrorText(message, walk) : copy(message, depth + 1, walk, true);
    const stack = read(() => error.stack);
    if (typeof stack === 'string') {
      result.stack = copyErrorText(
        safe === undefined ? stack : stackWithMessage(result.type as string, safe, stack),
        walk,
      );
    }
    // With a safe message, the adapter said the error quotes data: its fields and cause may too
    // (a Prisma error's meta holds the driver's own message), so only its code stays.
    const keys =
      safe !== undefined
        ? Object.keys(error).filter((key) => key === 'code')
        : Object.keys(error).filter(
            (key) => key !== 'type' && key !== 'message' && key !== 'stack' && !ERROR_PAYLOAD_KEYS.has(key),
          );
    copyEntries(result, error, keys, depth, walk);
    if (safe !== undefined) return result;
    // `cause` and `errors` are own but not enumerable, so they are read explicitly.
    const cause = read(() => error.cause);
    if (cause !== undefined && !Object.hasOwn(result, 'cause'))
      result.cause = copy(cause, depth + 1, walk, true);
    const errors = read(() => (error as { errors?: unknown }).errors);
    if (Array.isArray(errors)) result.aggregateErrors = copy(errors, depth + 1, walk, true);
    return result;
  }

  function copyObject(source: object, depth: number, walk: Walk, allowToJSON: boolean): unknown {
    if (source instanceof Error) return copyError(source, depth, walk);
    if (Array.isArray(source)) {
      const kept = Math.min(source.length, MAX_BREADTH);
      const result: unknown[] = new Array(kept);
      for (let i = 0; i < kept; i++) {
        let item: unknown;
        try {
          item = source[i];
        } catch {
          item = UNREADABLE;
        }
        result[i] = copy(item, depth + 1, walk, true);
      }
      if (source.length > kept) result.push(`[Truncated: ${source.length - kept} more items]`);
      return result;
    }
    if (source instanceof Date) return Number.isNaN(source.getTime()) ? null : source.toISOString();
    if (ArrayBuffer.isView(source) || source instanceof ArrayBuffer) return describeBinary(source);
    if (source instanceof Map) {
      const result: Record<string, unknown> = {};
      let index = 0;
      for (const [key, entry] of source) {
        if (index++ === MAX_BREADTH) {
          result[TRUNCATED] = `${source.size - MAX_BREADTH} more entries`;
          break;
        }
        const name = decideKey(typeof key === 'string' ? key : String(key));
        if (name === null) setEntry(result, String(key), REDACTED);
        else setEntry(result, name, copy(entry, depth + 1, walk, true));
      }
      return result;
    }
    if (source instanceof Set) {
      const result: unknown[] = [];
      for (const item of source) {
        if (result.length === MAX_BREADTH) {
          result.push(`[Truncated: ${source.size - MAX_BREADTH} more items]`);
          break;
        }
        result.push(copy(item, depth + 1, walk, true));
      }
      return result;
    }
    if (allowToJSON) {
      const toJSON = (source as { toJSON?: unknown }).toJSON;
      // JSON.stringify would call it; the result is copied once more, without calling its own toJSON.
      if (typeof toJSON === 'function') {
        const json: unknown = toJSON.call(source);
        if (json !== source) return copy(json, depth, walk, false);
      }
    }
    const result: Record<string, unknown> = {};
    copyEntries(result, source, Object.keys(source), depth, walk);
    return result;
  }

  function copy(input: unknown, depth: number, walk: Walk, allowToJSON: boolean): unknown {
    if (++walk.nodes > MAX_NODES) return TRUNCATED;
    switch (typeof input) {
      case 'string':
        return copyString(input, walk);
      case 'number':
      case 'boolean':
      case 'undefined':
        return input;
      case 'bigint':
        return input.toString();
      case 'symbol':
      case 'function':
        return undefined;
    }
    if (input === null) return null;
    const source = input as object;
    if (depth >= MAX_DEPTH) return TRUNCATED;
    if (walk.ancestors.includes(source)) return CIRCULAR;
    walk.ancestors.push(source);
    try {
      return copyObject(source, depth, walk, allowToJSON);
    } catch {
      // A proxy trap, a throwing iterator or toJSON, a revoked proxy: the whole object is unreadable.
      return UNREADABLE;
    } finally {
      walk.ancestors.pop();
    }
  }

  function redactSensitivePairs(text: string): string {
    let result = '';
    let copiedUpTo = 0;
    KEY_SEPARATOR.lastIndex = 0;
    for (let pair = KEY_SEPARATOR.exec(text); pair !== null; pair = KEY_SEPARATOR.exec(text)) {
      if (decideKey(pair[2]!) !== null) continue;
      VALUE.lastIndex = KEY_SEPARATOR.lastIndex;
      const value = VALUE.exec(text);
      if (value === null) continue;
      result += `${text.slice(copiedUpTo, value.index)}${REDACTED}`;
      copiedUpTo = VALUE.lastIndex;
      KEY_SEPARATOR.lastIndex = copiedUpTo;
    }
    return copiedUpTo === 0 ? text : result + text.slice(copiedUpTo);
  }

  function redactErrorText(input: string): string {
    let result = redactString(input);
    // A URL quoted in an error (a bad request's) keeps no query values: `code`, `state`, signatures.
    if (result.indexOf('?') !== -1) result = result.replace(QUERY_PARAMETER, `$1$2=${REDACTED}`);
    if (result.indexOf(':') !== -1 || result.indexOf('=') !== -1) result = redactSensitivePairs(result);
    if (result.indexOf('is not valid JSON') !== -1)
      result = result.replace(JSON_PARSE_FRAGMENT, `$1${REDACTED}$2`);
    return result;
  }

  const repeatedResults = new Map<string, string>();

  function redactRepeated(input: string): string {
    if (input.length > MAX_REPEATED_LENGTH) return redactString(input);
    const known = repeatedResults.get(input);
    if (known !== undefined) return known;
    const redacted = redactString(input);
    // Starting over when full keeps the bound without bookkeeping on every hit.
    if (repeatedResults.size >= MAX_REPEATED) repeatedResults.clear();
    repeatedResults.set(input, redacted);
    return redacted;
  }

  return {
    value: (input) => copy(input, 0, { nodes: 0, scannedChars: 0, ancestors: [] }, true),
    string: redactString,
    repeated: redactRepeated,
    errorText: redactErrorText,
  };
}
