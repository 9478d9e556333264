import { hostname } from 'node:os';
import { type Context, context, INVALID_TRACEID, trace } from '@opentelemetry/api';
import pino, { type Bindings, type ChildLoggerOptions, type DestinationStream, type Logger } from 'pino';
import type { ResolvedConfig } from './config.ts';
import { getRequestState } from './context.ts';
import type { InternalErrorSink } from './internal-errors.ts';
import { LineWriter } from './line-writer.ts';
import { createRedactor, type Redactor } from './redact.ts';

/** The service a record comes from, written on every record as `service`, `service_version`, `deployment_environment`. */
export interface LoggerServiceFields {
  service: string;
  version: string | undefined;
  environment: string;
}

/**
 * One HTTP request, as Sextant's HTTP code saw it. Only `path` and `user_agent` come from the
 * client, so only they are redacted; the rest is written as is.
 */
export interface AccessLogRecord {
  method: string;
  /** The route template (`/users/:id`), never the raw path. */
  route: string;
  /** The request path without its query. */
  path: string;
  /** Undefined when the client went away before the response was sent. */
  status: number | undefined;
  duration_ms: number;
  /** Response body size, when known. */
  bytes: number | undefined;
  user_agent: string | undefined;
  remote_address?: string | undefined;
  aborted?: boolean;
  /** What the handler threw, if anything. */
  error?: unknown;
}

/**
 * Keys that only Sextant writes. A logged object (or child binding) that uses one keeps its value
 * under `fields_<key>` instead: pino writes `level` and `time` before the object and bindings before
 * it too, so letting the key through would put it twice in one JSON object, and a request body
 * logged as is could otherwise pass for another trace or request.
 */
const RESERVED_KEYS: readonly string[] = [
  'level',
  'time',
  'msg',
  'pid',
  'hostname',
  'service',
  'service_version',
  'deployment_environment',
  'trace_id',
  'span_id',
  'trace_flags',
  'request_id',
];
const COLLISION_PREFIX = 'fields_';
/** Where a logged value that is not an object (an array, an unreadable proxy) goes. */
const NON_OBJECT_KEY = 'fields';
const BUSINESS_EVENT_KEYS: readonly string[] = ['event', 'event_kind'];
const ACCESS_LOG_MESSAGE = 'request completed';
const INTERNAL_ERROR_MESSAGE = 'sextant internal error';
const TRACE_FLAGS_HEX: readonly string[] = Array.from({ length: 256 }, (_, flags) =>
  flags.toString(16).padStart(2, '0'),
);
const LINE_SEPARATORS = /[\u2028\u2029]/g;

/** Returned by the mixin outside any request or span, so such records allocate nothing for it. */
const NO_CORRELATION: object = Object.freeze({});
const UNSERIALIZABLE = '[Unserializable]';

const kRedactor = Symbol('sextant.logger.redactor');
const kTakenKeys = Symbol('sextant.logger.takenKeys');
const kSerializers = Symbol('sextant.logger.serializers');
const kSink = Symbol('sextant.logger.sink');

type Serializers = Readonly<Record<string, (value: any) => unknown>>;
const NO_SERIALIZERS: Serializers = Object.freeze({});

interface SextantLogger extends Logger {
  [kRedactor]?: Redactor;
  [kSink]?: InternalErrorSink;
  /**
   * Serializers given to `child(bindings, { serializers })` (Fastify passes its `req`/`res` ones):
   * applied by the hook to the original value, before the redacting copy, since pino's own pass
   * would only see the copy.
   */
  [kSerializers]?: Serializers;
  /** Reserved keys plus this logger's bindings: a logged object cannot repeat any of them. */
  [kTakenKeys]?: ReadonlySet<string>;
}

let fallbackRedactor: Redactor | undefined;
const RESERVED_KEY_SET: ReadonlySet<string> = new Set(RESERVED_KEYS);

function redactorOf(logger: SextantLogger): Redactor {
  const own = logger[kRedactor];
  if (own !== undefined) return own;
  fallbackRedactor ??= createRedactor({ extraKeys: [] });
  return fallbackRedactor;
}

function sinkOf(logger: SextantLogger): InternalErrorSink | undefined {
  return logger[kSink];
}

function takenKeysOf(logger: SextantLogger): ReadonlySet<string> {
  return logger[kTakenKeys] ?? RESERVED_KEY_SET;
}

/** Derived key sets per parent set and added keys: a framework makes a child per request (Fastify). */
const derivedTakenKeys = new WeakMap<ReadonlySet<string>, Map<string, ReadonlySet<string>>>();
const MAX_DERIVED_PER_SET = 64;

/** `taken` plus `added`. The sets are never changed once made, so equal derivations share one. */
function withTakenKeys(taken: ReadonlySet<string>, added: string[]): ReadonlySet<string> {
  if (added.length === 0) return taken;
  const signature = added.length === 1 ? added[0]! : added.join('\u0000');
  let derived = derivedTakenKeys.get(taken);
  const known = derived?.get(signature);
  if (known !== undefined) return known;
  const set: ReadonlySet<string> = new Set([...taken, ...added]);
  if (derived === undefined) {
    derived = new Map();
    derivedTakenKeys.set(taken, derived);
  }
  if (derived.size < MAX_DERIVED_PER_SET) derived.set(signature, set);
  return set;
}

/** The record Sextant built itself and is handing to pino right now: the hook lets it through as is. */
let trustedRecord: object | undefined;

function writeTrusted(
  logger: Logger,
  level: 'info' | 'error',
  record: object,
  message: string | undefined,
): void {
  trustedRecord = record;
  try {
    logger[level](record, message);
  } finally {
    trustedRecord = undefined;
  }
}

function moveAside(record: Record<string, unknown>, key: string, taken: ReadonlySet<string>): void {
  let target = COLLISION_PREFIX + key;
  while (Object.hasOwn(record, target) || taken.has(target)) target = COLLISION_PREFIX + target;
  record[target] = record[key];
  delete record[key];
}

function isHttpRequest(value: any): boolean {
  return Boolean(value.method && value.headers && value.socket);
}

/**
 * What pino itself would do with the object first (an Error goes under `err`, a Node request or
 * response is reduced to pino's summary), done before the copy so that a socket is not walked.
 */
function beforeCopy(input: object): unknown {
  try {
    if (input instanceof Error) return { err: input };
    if (isHttpRequest(input)) return pino.stdSerializers.mapHttpRequest(input as any);
    if (typeof (input as any).setHeader === 'function')
      return pino.stdSerializers.mapHttpResponse(input as any);
  } catch {
    // A hostile object: the copy marks what it cannot read.
  }
  return input;
}

/** The logged object with the child's serializers applied to their keys; a throwing one marks its key. */
function serialize(logger: SextantLogger, input: object): object {
  const serializers = logger[kSerializers];
  if (serializers === undefined || input instanceof Error) return input;
  let output: Record<string, unknown> | undefined;
  for (const key in serializers) {
    if (!Object.hasOwn(input, key)) continue;
    output ??= { ...input };
    try {
      output[key] = serializers[key]!((input as Record<string, unknown>)[key]);
    } catch {
      output[key] = UNSERIALIZABLE;
    }
  }
  return output ?? input;
}

/** A redacted plain copy of a logged object (or binding); pino would turn a non-object into numbered keys. */
function copyRecord(logger: SextantLogger, input: object): Record<string, unknown> {
  const copied = redactorOf(logger).value(beforeCopy(serialize(logger, input)));
  return typeof copied === 'object' && copied !== null && !Array.isArray(copied)
    ? (copied as Record<string, unknown>)
    : { [NON_OBJECT_KEY]: copied };
}

function moveTakenKeysAside(logger: SextantLogger, record: Record<string, unknown>): Record<string, unknown> {
  const taken = takenKeysOf(logger);
  for (const key in record) if (taken.has(key)) moveAside(record, key, taken);
  return record;
}

/** Interpolation arguments and non-string messages, made safe for pino's `%j`/`%o` stringify. */
function toLoggable(redactor: Redactor, value: unknown): unknown {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'undefined':
      return value;
    default:
      return value === null ? null : redactor.value(value);
  }
}

/**
 * An argument for a `%s` placeholder: the text `String()` gives (an Error's `Name: message`), not
 * the JSON-safe copy `%j` and `%o` need, which `%s` would print as `[object Object]`.
 */
function toText(redactor: Redactor, value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return toLoggable(redactor, value);
  try {
    return value instanceof Error
      ? redactor.errorText(`${value.name}: ${value.message}`)
      : redactor.string(String(value));
  } catch {
    return '[Unreadable]';
  }
}

/** For each argument after a format string, whether its placeholder is `%s`. */
function textPlaceholders(format: unknown): boolean[] | undefined {
  if (typeof format !== 'string' || format.indexOf('%s') === -1) return undefined;
  const kinds: boolean[] = [];
  for (let i = 0; i < format.length - 1; i++) {
    if (format.charCodeAt(i) !== 37 /* % */) continue;
    const next = format[i + 1]!;
    if (next === '%') {
      i++;
      continue;
    }
    if ('sdifjoOc'.includes(next)) kinds.push(next === 's');
    i++;
  }
  return kinds;
}

/**
 * Rewrites a log call's arguments before pino reads them: pino touches the logged object
 * (`obj.method`, `obj.err.message`) before any formatter runs, so a throwing getter would throw
 * into the caller, and only a copy made here is safe for it.
 */
function prepareArguments(logger: SextantLogger, args: unknown[]): void {
  const redactor = redactorOf(logger);
  const first = args[0];
  let firstArgument = 1;
  if (typeof first === 'object' && first !== null) {
    const record = copyRecord(logger, first);
    // pino writes an object's `msg` as the message when no message is given: it stays the message.
    if (args[1] === undefined && typeof record.msg === 'string') {
      args[1] = record.msg;
      delete record.msg;
    }
    args[0] = moveTakenKeysAside(logger, record);
    firstArgument = 2;
  } else if (first !== undefined) {
    args[0] = toLoggable(redactor, first);
  }
  const text = textPlaceholders(args[firstArgument - 1]);
  for (let i = firstArgument; i < args.length; i++) {
    args[i] = text?.[i - firstArgument] === true ? toText(redactor, args[i]) : toLoggable(redactor, args[i]);
  }
}

/**
 * The active span's ids and the request's state. The mixin also receives the record, so it moves
 * aside a logged `user_id` or `tenant_id` when the request names its own: those keys are free to
 * use outside a request, unlike the reserved ones.
 */
function correlationFields(record: object, logger: SextantLogger): object {
  const active = context.active();
  const span = trace.getSpan(active);
  const state = getRequestState(active);
  if (span === undefined && state === undefined) return NO_CORRELATION;
  const spanContext = span?.spanContext();
  const hasTrace = spanContext !== undefined && spanContext.traceId !== INVALID_TRACEID;
  const redactor = redactorOf(logger);
  // A child logger bound with its own user_id or tenant_id keeps it: pino writes bindings first,
  // and a second key of the same name is a record some parsers refuse whole.
  const taken = takenKeysOf(logger);
  const userId =
    state?.userId === undefined || taken.has('user_id') ? undefined : redactor.string(state.userId);
  const tenantId =
    state?.tenantId === undefined || taken.has('tenant_id') ? undefined : redactor.string(state.tenantId);
  const fields = record as Record<string, unknown>;
  if (userId !== undefined && Object.hasOwn(fields, 'user_id')) moveAside(fields, 'user_id', taken);
  if (tenantId !== undefined && Object.hasOwn(fields, 'tenant_id')) moveAside(fields, 'tenant_id', taken);
  return {
    trace_id: hasTrace ? spanContext.traceId : undefined,
    span_id: hasTrace ? spanContext.spanId : undefined,
    trace_flags: hasTrace ? TRACE_FLAGS_HEX[spanContext.traceFlags & 0xff] : undefined,
    request_id: state?.requestId,
    user_id: userId,
    tenant_id: tenantId,
  };
}

/** Ids first, for whoever reads the line; collisions were moved aside already, so nothing is overwritten. */
function mergeCorrelation(record: object, correlation: object): object {
  return correlation === NO_CORRELATION ? record : Object.assign(correlation, record);
}

/**
 * U+2028 and U+2029 are legal inside JSON strings but break lines in some viewers and JavaScript
 * tooling. Most lines are one-byte strings, where looking for a two-byte character costs nothing.
 */
function escapeLineSeparators(line: string): string {
  if (line.indexOf('\u2028') === -1 && line.indexOf('\u2029') === -1) return line;
  return line.replace(LINE_SEPARATORS, (separator) => (separator === '\u2028' ? '\\u2028' : '\\u2029'));
}

function passThrough(value: unknown): unknown {
  return value;
}

function bindSafely(logger: SextantLogger): void {
  const pinoChild = logger.child as unknown as (
    this: Logger,
    bindings: Bindings,
    options?: ChildLoggerOptions,
  ) => SextantLogger;
  const pinoSetBindings = logger.setBindings;
  // Children are created with Object.create(parent), so every descendant inherits these two.
  logger.child = function child(this: SextantLogger, bindings: Bindings, options?: ChildLoggerOptions) {
    const safe = moveTakenKeysAside(this, copyRecord(this, bindings ?? {}));
    let pinoOptions = options;
    let serializers: Serializers | undefined;
    if (options?.serializers !== undefined) {
      const { serializers: own, ...rest } = options;
      serializers = { ...(this[kSerializers] ?? NO_SERIALIZERS), ...(own as Serializers) };
      pinoOptions = rest;
    }
    const instance = pinoChild.call(this, safe, pinoOptions);
    instance[kTakenKeys] = withTakenKeys(takenKeysOf(this), Object.keys(safe));
    if (serializers !== undefined) instance[kSerializers] = serializers;
    return instance;
  } as unknown as Logger['child'];
  logger.setBindings = function setBindings(this: SextantLogger, bindings: Bindings) {
    const safe = moveTakenKeysAside(this, copyRecord(this, bindings ?? {}));
    pinoSetBindings.call(this, safe);
    this[kTakenKeys] = withTakenKeys(takenKeysOf(this), Object.keys(safe));
  };
}

/**
 * The process's JSON logger: one record per line, redacted, with the level by name (`"info"`), the
 * service fields, and the trace, span and request ids of whatever request or job is active.
 *
 * Stdout is written asynchronously by default, in batches, so a request does not pay for a
 * system call per record (see line-writer.ts); what is pending is written when the process exits,
 * also after an uncaught exception. Only a SIGKILL can lose the last records; `logs.sync`
 * (`SEXTANT_LOG_SYNC`) trades one write per record for that guarantee.
 */
export function createLogger(
  config: ResolvedConfig,
  sink: InternalErrorSink,
  redactor: Redactor = createRedactor({ extraKeys: config.logs.redactKeys }),
): Logger {
  let destination: DestinationStream | undefined = config.logs.destination;
  if (destination === undefined) {
    destination = new LineWriter({
      fd: 1,
      sync: config.logs.sync,
      onError: (kind, error) => sink.report(kind, error),
    });
  }
  const service: LoggerServiceFields = {
    service: config.serviceName,
    version: config.serviceVersion,
    environment: config.environment,
  };
  const logger: SextantLogger = pino(
    {
      level: config.logs.level,
      base: {
        pid: process.pid,
        hostname: hostname(),
        service: service.service,
        service_version: service.version,
        deployment_environment: service.environment,
      },
      formatters: { level: (label) => ({ level: label }) },
      // Objects were copied and redacted by the hook; the message is redacted once it is formatted.
      serializers: {
        err: passThrough,
        msg: (message: unknown) => (typeof message === 'string' ? redactor.string(message) : message),
      },
      mixin: (record, _level, instance) => correlationFields(record, instance as SextantLogger),
      mixinMergeStrategy: mergeCorrelation,
      hooks: {
        logMethod(args, method) {
          try {
            if (args[0] !== trustedRecord) prepareArguments(this, args as unknown[]);
            method.apply(this, args as Parameters<typeof method>);
          } catch (error) {
            sink.report('log_write', error);
          }
        },
        streamWrite: escapeLineSeparators,
      },
    },
    destination,
  );
  logger[kRedactor] = redactor;
  logger[kSink] = sink;
  logger[kTakenKeys] = RESERVED_KEY_SET;
  bindSafely(logger);

  const internal = logger.child({ component: 'sextant' });
  let writingInternalError = false;
  sink.setWriter(({ kind, error, occurrences }) => {
    // A failing destination reports its own failure; logging that report must not recurse.
    if (writingInternalError) return;
    writingInternalError = true;
    try {
      internal.warn({ kind, occurrences, err: error }, INTERNAL_ERROR_MESSAGE);
    } finally {
      writingInternalError = false;
    }
  });
  return logger;
}

/**
 * One record for something the business cares about (`order.placed`), at info:
 * `{ event, event_kind: 'business', ...fields }`. A field named `event` or `event_kind` is moved
 * aside to `fields_event` / `fields_event_kind`.
 */
export function logBusinessEvent(logger: Logger, name: string, fields?: Record<string, unknown>): void {
  const record = fields === undefined ? {} : moveTakenKeysAside(logger, copyRecord(logger, fields));
  const taken = takenKeysOf(logger);
  for (const key of BUSINESS_EVENT_KEYS) if (Object.hasOwn(record, key)) moveAside(record, key, taken);
  writeTrusted(logger, 'info', Object.assign({ event: name, event_kind: 'business' }, record), undefined);
}

const { chindingsSym, lsCacheSym, streamSym, timeSym } = pino.symbols;
const LEVEL_VALUES = { info: 30, error: 50 } as const;
const ACCESS_LOG_END = `,"msg":${JSON.stringify(ACCESS_LOG_MESSAGE)}}\n`;

/** Printable ASCII without `"` and `\`: such a string is its own JSON body, no escaping. */
const JSON_SAFE = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function jsonField(key: string, value: string): string {
  // Ids, methods, routes and most paths are plain ASCII; checking is cheaper than JSON.stringify.
  return JSON_SAFE.test(value) ? `,"${key}":"${value}"` : `,"${key}":${JSON.stringify(value)}`;
}

/** '001'...'999' without trailing zeros ('5' for 500): the fractional digits of a millisecond count. */
const MICROS_DIGITS: readonly string[] = Array.from({ length: 1000 }, (_, micros) =>
  String(micros).padStart(3, '0').replace(/0+$/, ''),
);
const MAX_EXACT_MICROS = 0x3fffffff;

/**
 * A duration in milliseconds as JSON, rounded to the microsecond (`12.5`, `0.031`, `3`). Timer
 * differences carry binary noise (`0.31245600000000002`) that says nothing and costs a slow
 * double-to-string conversion; small integers print from V8's number-string cache.
 */
export function formatMillis(ms: number): string {
  const micros = Math.round(ms * 1000);
  if (!(micros >= 0 && micros <= MAX_EXACT_MICROS)) return String(micros / 1000);
  const whole = (micros / 1000) | 0;
  const fraction = micros - whole * 1000;
  return fraction === 0 ? `${whole}` : `${whole}.${MICROS_DIGITS[fraction]}`;
}

/**
 * The access log record of one HTTP request, named like the span attributes and metric labels
 * (`http_route`, `http_response_status_code`...). The record comes from Sextant's own HTTP code, so
 * it skips the deep copy: only the client-supplied strings are redacted. 5xx responses log at error.
 *
 * It is written once per request, so it is serialised here rather than by pino's generic walk:
 * the line starts with pino's own cached level, time and bindings, and the fields follow in a
 * fixed order (about a third of the cost). A record with an error takes pino's path, which knows
 * how to serialise it. The ids come from `active`, the request's context.
 */
export function writeAccessLog(
  logger: Logger,
  record: AccessLogRecord,
  active: Context = context.active(),
): void {
  const redactor = redactorOf(logger);
  // A response cut short by a server error (status unknown) is the server's failure too.
  const level =
    (record.status !== undefined && record.status >= 500) ||
    (record.aborted === true && record.error !== undefined)
      ? 'error'
      : 'info';
  if (record.error !== undefined) {
    const fields = {
      http_request_method: record.method,
      http_route: record.route,
      url_path: redactor.string(record.path),
      http_response_status_code: record.status,
      duration_ms: Math.round(record.duration_ms * 1000) / 1000,
      http_response_body_size: record.bytes,
      user_agent_original: record.user_agent === undefined ? undefined : redactor.repeated(record.user_agent),
      client_address: record.remote_address,
      http_request_aborted: record.aborted === true ? true : undefined,
      err: redactor.value(record.error),
    };
    context.with(active, () => writeTrusted(logger, level, fields, ACCESS_LOG_MESSAGE));
    return;
  }
  if (!logger.isLevelEnabled(level)) return;
  const internals = logger as unknown as Record<symbol, any>;
  let line: string =
    internals[lsCacheSym][LEVEL_VALUES[level]] + internals[timeSym]() + internals[chindingsSym];

  const spanContext = trace.getSpan(active)?.spanContext();
  if (spanContext !== undefined && spanContext.traceId !== INVALID_TRACEID) {
    line += `,"trace_id":"${spanContext.traceId}","span_id":"${spanContext.spanId}","trace_flags":"${TRACE_FLAGS_HEX[spanContext.traceFlags & 0xff]}"`;
  }
  const state = getRequestState(active);
  if (state !== undefined) {
    line += jsonField('request_id', state.requestId);
    const taken = takenKeysOf(logger);
    if (state.userId !== undefined && !taken.has('user_id'))
      line += jsonField('user_id', redactor.string(state.userId));
    if (state.tenantId !== undefined && !taken.has('tenant_id'))
      line += jsonField('tenant_id', redactor.string(state.tenantId));
  }
  line += jsonField('http_request_method', record.method);
  line += jsonField('http_route', record.route);
  line += escapeLineSeparators(jsonField('url_path', redactor.string(record.path)));
  if (record.status !== undefined) line += `,"http_response_status_code":${record.status}`;
  if (Number.isFinite(record.duration_ms)) line += `,"duration_ms":${formatMillis(record.duration_ms)}`;
  if (record.bytes !== undefined && Number.isFinite(record.bytes)) {
    line += `,"http_response_body_size":${record.bytes}`;
  }
  if (record.user_agent !== undefined) {
    line += escapeLineSeparators(jsonField('user_agent_original', redactor.repeated(record.user_agent)));
  }
  if (record.remote_address !== undefined) line += jsonField('client_address', record.remote_address);
  if (record.aborted === true) line += ',"http_request_aborted":true';
  try {
    internals[streamSym].write(line + ACCESS_LOG_END);
  } catch (error) {
    sinkOf(logger)?.report('log_write', error);
  }
}
