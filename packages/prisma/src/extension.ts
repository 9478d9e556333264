import {
  type Attributes,
  type Context,
  context,
  createContextKey,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  type SpanOptions,
  SpanStatusCode,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import {
  ATTR_DB_COLLECTION_NAME,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_QUERY_TEXT,
  ATTR_DB_RESPONSE_STATUS_CODE,
  ATTR_DB_SYSTEM_NAME,
  ATTR_ERROR_TYPE,
  ATTR_EXCEPTION_MESSAGE,
  ATTR_EXCEPTION_STACKTRACE,
  ATTR_EXCEPTION_TYPE,
  DB_SYSTEM_NAME_VALUE_MARIADB,
  DB_SYSTEM_NAME_VALUE_MICROSOFT_SQL_SERVER,
  DB_SYSTEM_NAME_VALUE_MYSQL,
  DB_SYSTEM_NAME_VALUE_POSTGRESQL,
} from '@opentelemetry/semantic-conventions';
import {
  contextWithSpan,
  DB_SYSTEM_NAME_VALUE_SQLITE,
  METRICS,
  type Redactor,
  type Sextant,
  type SextantHistogram,
  type SextantHistogramChild,
  setSafeErrorMessage,
} from '@sextant/core';
import { driverStatusCodeOf, errorDescription, errorSummary, errorTypeOf, stackFrames } from './errors.ts';
import { assertSextant, PACKAGE_NAME, type ResolvedPrismaOptions, resolveOptions } from './options.ts';
import { sanitizeQueryText } from './query-text.ts';
import {
  ATTR_PRISMA_ARGS,
  DB_SYSTEM_NAME_VALUE_COCKROACHDB,
  DB_SYSTEM_NAME_VALUE_MONGODB,
  DB_SYSTEM_NAME_VALUE_OTHER_SQL,
} from './semconv.ts';
import type { SextantPrismaOptions } from './types.ts';

/** What Prisma hands a `$allOperations` query extension. */
export interface PrismaOperationParams {
  /** The model, or undefined for client-level operations (`$queryRaw`, `$executeRaw`...). */
  model?: string;
  operation: string;
  args: any;
  /** Runs the operation; Prisma's promise is lazy, `then` starts it. */
  query: (args: any) => Promise<unknown>;
}

/** The part of a Prisma client the extension needs: Prisma 6 and 7 clients satisfy it. */
interface ExtendablePrismaClient {
  $extends(extension: {
    name: string;
    query: { $allOperations(params: PrismaOperationParams): Promise<unknown> };
  }): unknown;
}

/**
 * What `sextantPrisma` returns, typed like `Prisma.defineExtension` of a query-only extension:
 * `$extends` keeps the client's own types (models, results, other extensions) as they were.
 */
export type SextantPrismaExtension = (client: any) => {
  $extends: { extArgs: { result: {}; model: {}; query: {}; client: {} } };
};

type DurationHistogram = SextantHistogram<(typeof METRICS.dbClientOperationDuration.labelNames)[number]>;

const SINK_KIND = 'prisma';
const SLOW_QUERY_MESSAGE = 'slow database operation';
const NO_MODEL = '';
const RAW_OPERATIONS: ReadonlySet<string> = new Set([
  '$queryRaw',
  '$executeRaw',
  '$queryRawUnsafe',
  '$executeRawUnsafe',
  '$queryRawTyped',
  '$runCommandRaw',
]);

/** Prisma's provider names (schema `datasource.provider`, adapters' `provider`) to `db.system.name`. */
const SYSTEM_BY_PROVIDER: ReadonlyMap<string, string> = new Map([
  ['postgresql', DB_SYSTEM_NAME_VALUE_POSTGRESQL],
  ['postgres', DB_SYSTEM_NAME_VALUE_POSTGRESQL],
  ['sqlite', DB_SYSTEM_NAME_VALUE_SQLITE],
  ['mysql', DB_SYSTEM_NAME_VALUE_MYSQL],
  ['mariadb', DB_SYSTEM_NAME_VALUE_MARIADB],
  ['sqlserver', DB_SYSTEM_NAME_VALUE_MICROSOFT_SQL_SERVER],
  ['cockroachdb', DB_SYSTEM_NAME_VALUE_COCKROACHDB],
  ['mongodb', DB_SYSTEM_NAME_VALUE_MONGODB],
]);

/** Operations run in a context holding this key are not instrumented (the health check's probe). */
const kUninstrumented = createContextKey('@sextant/prisma uninstrumented');
export const UNINSTRUMENTED_CONTEXT: Context = ROOT_CONTEXT.setValue(kUninstrumented, true);

/** Everything about one (model, operation) pair that does not change between calls. */
interface OperationInfo {
  readonly spanName: string;
  readonly spanOptions: SpanOptions;
  readonly operation: string;
  readonly collection: string;
  readonly raw: boolean;
  /** The duration series of successful calls. */
  readonly success: SextantHistogramChild;
}

function systemNameOf(client: unknown): string {
  try {
    const provider = (client as { _activeProvider?: unknown })._activeProvider;
    if (typeof provider === 'string')
      return SYSTEM_BY_PROVIDER.get(provider) ?? DB_SYSTEM_NAME_VALUE_OTHER_SQL;
  } catch {
    // An unexpected client shape: the fallback below is still a valid label.
  }
  return DB_SYSTEM_NAME_VALUE_OTHER_SQL;
}

function settle(
  pending: Promise<unknown>,
  onResult: (result: unknown) => unknown,
  onError: (error: unknown) => never,
): Promise<unknown> {
  return pending.then(onResult, onError);
}

/**
 * The SQL of a raw query as written: a tagged template's strings joined by `$n` placeholders
 * (never its values), or the text of an `Unsafe` call or of `Prisma.raw`, whose literals are
 * still in it.
 */
function rawQueryText(args: unknown): string | undefined {
  if (Array.isArray(args)) {
    const [first] = args;
    if (typeof first === 'string') return first;
    if (Array.isArray(first) && first.every((part) => typeof part === 'string')) {
      return first.reduce((sql: string, part: string, index: number) => `${sql}$${index}${part}`);
    }
  }
  const strings = (args as { strings?: unknown } | null)?.strings;
  if (Array.isArray(strings) && strings.every((part) => typeof part === 'string')) {
    return strings.reduce((sql: string, part: string, index: number) => `${sql}$${index}${part}`);
  }
  return undefined;
}

/**
 * A Prisma client extension: `prisma.$extends(sextantPrisma(sextant))`. Every operation (model
 * operations and raw queries) gets a CLIENT span, child of the active span and sampled with it,
 * and a `db_client_operation_duration_seconds` observation; failures carry the Prisma error code
 * as `error.type`; operations past `slowQueryMs` are logged. Query errors reach the caller
 * unchanged; the extension's own failures go to `sextant.errors`.
 *
 * Throws a `SextantConfigError` (code `SEXTANT_INVALID_OPTION`, or `SEXTANT_INVALID_ENV` for
 * `SEXTANT_PRISMA_SLOW_QUERY_MS`) when an option is invalid.
 */
export function sextantPrisma(sextant: Sextant, options?: SextantPrismaOptions): SextantPrismaExtension {
  assertSextant(sextant, 'sextantPrisma');
  // The environment the application configured Sextant from (`createSextant({ env })`).
  const resolved = resolveOptions(options, (name) => sextant.readEnv(name));
  const histogram = sextant.metrics.histogram(METRICS.dbClientOperationDuration);
  const redactor = resolved.includeArgs ? sextant.redactor : undefined;
  return function extendWithSextant(client: ExtendablePrismaClient) {
    const system = resolved.dbSystemName ?? systemNameOf(client);
    return client.$extends({
      name: PACKAGE_NAME,
      query: { $allOperations: createOperationHook(sextant, resolved, histogram, system, redactor) },
    }) as ReturnType<SextantPrismaExtension>;
  };
}

function createOperationHook(
  sextant: Sextant,
  options: ResolvedPrismaOptions,
  histogram: DurationHistogram,
  system: string,
  redactor: Redactor | undefined,
): (params: PrismaOperationParams) => Promise<unknown> {
  const { tracer, errors } = sextant;
  const slowQueryMs = options.slowQueryMs;
  // Sextant's own parent-based sampler never samples the child of an unsampled span: knowing
  // that here skips starting a span that could only be a non-recording one.
  const parentDecides =
    sextant.tracing.ownsProvider && sextant.config.tracing.sampler.startsWith('parentbased_');
  const spansEnabled = sextant.tracing.enabled && options.spans;

  // The last unsampled parent found valid: a request's queries share one, and the check runs two
  // regular expressions over its ids.
  let validUnsampledParent: SpanContext | undefined;

  function mayRecord(parent: Context): boolean {
    if (!spansEnabled) return false;
    if (!parentDecides) return true;
    const parentSpan = trace.getSpanContext(parent);
    if (parentSpan === undefined || (parentSpan.traceFlags & TraceFlags.SAMPLED) !== 0) return true;
    if (parentSpan === validUnsampledParent) return false;
    // An invalid parent is no parent: the root sampler decides.
    if (!trace.isSpanContextValid(parentSpan)) return true;
    validUnsampledParent = parentSpan;
    return false;
  }
  // model -> operation -> info; both sets are bounded by the schema and Prisma's API.
  const infos = new Map<string, Map<string, OperationInfo>>();

  function describeOperation(model: string | undefined, operation: string): OperationInfo {
    const collection = model ?? NO_MODEL;
    const attributes: Attributes = {
      [ATTR_DB_SYSTEM_NAME]: system,
      [ATTR_DB_OPERATION_NAME]: operation,
    };
    if (model !== undefined) attributes[ATTR_DB_COLLECTION_NAME] = model;
    const info: OperationInfo = {
      spanName: model === undefined ? operation : `${operation} ${model}`,
      spanOptions: Object.freeze({ kind: SpanKind.CLIENT, attributes: Object.freeze(attributes) }),
      operation,
      collection,
      raw: RAW_OPERATIONS.has(operation),
      success: histogram.child(system, operation, collection, ''),
    };
    let byOperation = infos.get(collection);
    if (byOperation === undefined) {
      byOperation = new Map();
      infos.set(collection, byOperation);
    }
    byOperation.set(operation, info);
    return info;
  }

  function addArgs(span: Span, info: OperationInfo, args: unknown): void {
    if (redactor === undefined) return;
    if (info.raw) {
      // A template's own strings and any text given whole can hold literals (values written
      // straight into the SQL): only the sanitised text leaves the process.
      const text = rawQueryText(args);
      if (text !== undefined) {
        span.setAttribute(ATTR_DB_QUERY_TEXT, redactor.string(sanitizeQueryText(text, system)));
      }
    } else if (args !== undefined) {
      span.setAttribute(ATTR_PRISMA_ARGS, JSON.stringify(redactor.value(args)));
    }
  }

  /**
   * What the operation's span, and logs and spans downstream of it (the request's span, the error
   * handler's record), show of a failed query's message: Prisma's messages print the query's
   * arguments and the values the database refused, so the code's fixed description, or with
   * includeArgs the message's last line, redacted. Undefined when neither exists.
   */
  function safeMessageOf(error: unknown, errorType: string): string | undefined {
    if (redactor !== undefined && error instanceof Error)
      return redactor.errorText(errorSummary(error.message));
    return errorDescription(errorType);
  }

  /** Error type, status and an `exception` event with the safe message and the stack's frames only. */
  function recordError(
    span: Span,
    error: unknown,
    errorType: string,
    statusCode: string | undefined,
    message: string | undefined,
  ): void {
    span.setAttribute(ATTR_ERROR_TYPE, errorType);
    if (statusCode !== undefined) span.setAttribute(ATTR_DB_RESPONSE_STATUS_CODE, statusCode);
    span.setStatus({ code: SpanStatusCode.ERROR, message: errorType });
    const exception: Attributes = { [ATTR_EXCEPTION_TYPE]: errorType };
    if (message !== undefined) exception[ATTR_EXCEPTION_MESSAGE] = message;
    if (error instanceof Error) {
      const frames = stackFrames(error);
      if (frames !== undefined) exception[ATTR_EXCEPTION_STACKTRACE] = frames;
    }
    span.addEvent('exception', exception);
  }

  function logSlow(
    info: OperationInfo,
    durationMs: number,
    errorType: string | undefined,
    statusCode: string | undefined,
    args: unknown,
    logContext: Context,
  ): void {
    const record: Record<string, unknown> = {
      db_system_name: system,
      db_operation_name: info.operation,
      db_collection_name: info.collection,
      duration_ms: Math.round(durationMs * 1000) / 1000,
      slow_query_threshold_ms: slowQueryMs,
    };
    if (errorType !== undefined) record.error_type = errorType;
    if (statusCode !== undefined) record.db_response_status_code = statusCode;
    if (redactor !== undefined && !info.raw && args !== undefined) record.args = args;
    context.with(logContext, () => sextant.logger.warn(record, SLOW_QUERY_MESSAGE));
  }

  /** Ends the span, records the duration and logs a slow operation. Never throws. */
  function finish(
    info: OperationInfo,
    span: Span | undefined,
    spanContext: Context,
    started: number,
    args: unknown,
    failed: boolean,
    error: unknown,
  ): void {
    try {
      const durationMs = performance.now() - started;
      const errorType = failed ? errorTypeOf(error) : undefined;
      const statusCode = failed ? driverStatusCodeOf(error) : undefined;
      if (errorType === undefined) info.success.observe(durationMs / 1000);
      else {
        histogram.observe(
          {
            db_system_name: system,
            db_operation_name: info.operation,
            db_collection_name: info.collection,
            error_type: errorType,
          },
          durationMs / 1000,
        );
      }
      if (errorType !== undefined) {
        const message = safeMessageOf(error, errorType);
        setSafeErrorMessage(
          error,
          message ?? `${errorType} (message withheld: Prisma messages quote the query's values)`,
        );
        if (span !== undefined) recordError(span, error, errorType, statusCode, message);
      }
      span?.end();
      if (durationMs >= slowQueryMs) logSlow(info, durationMs, errorType, statusCode, args, spanContext);
    } catch (failure) {
      errors.report(SINK_KIND, failure);
    }
  }

  return function $allOperations({ model, operation, args, query }) {
    const parent = context.active();
    if (parent.getValue(kUninstrumented) === true) return query(args);
    let info: OperationInfo;
    let span: Span | undefined;
    let spanContext = parent;
    let started: number;
    try {
      info = infos.get(model ?? NO_MODEL)?.get(operation) ?? describeOperation(model, operation);
      if (mayRecord(parent)) {
        const candidate = tracer.startSpan(info.spanName, info.spanOptions, parent);
        if (candidate.isRecording()) {
          span = candidate;
          spanContext = contextWithSpan(parent, span);
          addArgs(span, info, args);
        }
      }
      started = performance.now();
    } catch (failure) {
      errors.report(SINK_KIND, failure);
      span?.end();
      return query(args);
    }
    const onResult = (result: unknown) => {
      finish(info, span, spanContext, started, args, false, undefined);
      return result;
    };
    const onError = (error: unknown) => {
      finish(info, span, spanContext, started, args, true, error);
      throw error;
    };
    // Prisma queries are lazy: `then` runs them, so it is called inside the span's context,
    // where the driver's own work (and any spans it makes) belongs.
    try {
      return span === undefined
        ? query(args).then(onResult, onError)
        : context.with(spanContext, settle, undefined, query(args), onResult, onError);
    } catch (error) {
      return onError(error);
    }
  };
}
