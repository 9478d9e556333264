import type { SpanExporter } from '@opentelemetry/sdk-trace';
import type { DestinationStream, Level } from 'pino';
import { describeValue, ERROR_CODES, SextantConfigError } from './errors.ts';

export type TracesExporterName = 'otlp' | 'console' | 'memory' | 'none';
export type TracesSamplerName =
  | 'always_on'
  | 'always_off'
  | 'traceidratio'
  | 'parentbased_always_on'
  | 'parentbased_always_off'
  | 'parentbased_traceidratio';
export type OtlpProtocol = 'http/protobuf' | 'http/json';
export type LogLevel = Level | 'silent';

export interface SextantTracingOptions {
  /** Turns tracing off entirely. Env: `OTEL_SDK_DISABLED=true`. Default `true`. */
  enabled?: boolean;
  /**
   * Where spans go: `otlp` (OTLP over HTTP), `console`, `memory` (read back with
   * `sextant.tracing.finishedSpans()`), `none`, or any OpenTelemetry `SpanExporter`.
   * Env: `OTEL_TRACES_EXPORTER`. Default `otlp`.
   */
  exporter?: TracesExporterName | SpanExporter;
  /**
   * OTLP base URL; `/v1/traces` is appended. Env: `OTEL_EXPORTER_OTLP_ENDPOINT`, or the full
   * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`. Default `http://localhost:4318`.
   */
  endpoint?: string;
  /** OTLP encoding. Env: `OTEL_EXPORTER_OTLP_PROTOCOL`. Default `http/protobuf`. */
  protocol?: OtlpProtocol;
  /** Extra headers on OTLP requests. Env: `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`). */
  headers?: Record<string, string>;
  /** Env: `OTEL_TRACES_SAMPLER`. Default `parentbased_always_on`. */
  sampler?: TracesSamplerName;
  /** Ratio for the `traceidratio` samplers, 0..1. Env: `OTEL_TRACES_SAMPLER_ARG`. Default `1`. */
  samplerRatio?: number;
  /** Batch span processor limits. Env: `OTEL_BSP_*`. */
  batch?: Partial<BatchOptions>;
  /** Longest attribute value kept, in characters. Env: `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`. Default `4096`. */
  attributeValueLengthLimit?: number;
}

export interface BatchOptions {
  /** Env: `OTEL_BSP_MAX_QUEUE_SIZE`. Default 2048. Spans past it are dropped and counted. */
  maxQueueSize: number;
  /** Env: `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`. Default 512. */
  maxExportBatchSize: number;
  /** Env: `OTEL_BSP_SCHEDULE_DELAY`. Default 5000 ms. */
  scheduledDelayMillis: number;
  /** Env: `OTEL_BSP_EXPORT_TIMEOUT`. Default 30000 ms. */
  exportTimeoutMillis: number;
}

export interface SextantMetricsOptions {
  /** Env: `SEXTANT_METRICS_ENABLED`. Default `true`. */
  enabled?: boolean;
  /** Node runtime default metrics. Env: `SEXTANT_METRICS_DEFAULT`. Default `true`. */
  defaultMetrics?: boolean;
  /** Label sets allowed per metric; new ones past it are refused and counted. Env: `SEXTANT_METRICS_SERIES_LIMIT`. Default 2000. */
  seriesLimit?: number;
  /**
   * Milliseconds a gauge's scrape-time `collect` may take before the scrape goes on without it
   * (its last values are served and `collect_failed` counted). Env:
   * `SEXTANT_METRICS_COLLECT_TIMEOUT_MS`. Default 2000.
   */
  collectTimeoutMs?: number;
  /** Buckets (seconds) of the HTTP duration histogram. Default: OpenTelemetry's HTTP advice. */
  httpDurationBuckets?: number[];
}

export interface SextantLogsOptions {
  /** Env: `SEXTANT_LOG_LEVEL`. Default `info`. */
  level?: LogLevel;
  /** Where JSON lines go. Default: stdout. */
  destination?: DestinationStream;
  /** Extra keys to redact (case-insensitive, at any depth), added to the built-in list. */
  redactKeys?: string[];
  /** One access log record per HTTP request. Env: `SEXTANT_ACCESS_LOG`. Default `true`. */
  accessLog?: boolean;
  /**
   * Write each record to stdout before the log call returns (a system call per record) instead of
   * in batches; only matters for a process killed with SIGKILL. Env: `SEXTANT_LOG_SYNC`. Default `false`.
   */
  sync?: boolean;
}

export interface SextantHealthOptions {
  /** Default timeout of each check. Env: `SEXTANT_HEALTH_TIMEOUT_MS`. Default 500. */
  checkTimeoutMs?: number;
  /** Event-loop delay (p99 over the last window) above which the built-in check fails. Default 1000 ms. */
  eventLoopLagThresholdMs?: number;
  /** Heap used / heap limit above which the built-in memory check fails. Default 0.95. */
  heapUsedRatioThreshold?: number;
}

export interface SextantHttpOptions {
  /** Header read and echoed as the correlation id. Default `x-request-id`. */
  requestIdHeader?: string;
  /** Paths kept out of request metrics, spans and access logs (besides Sextant's own endpoints). */
  ignorePaths?: string[];
}

export interface SextantEndpointsOptions {
  /** Prefix for `/metrics` and `/health*`, e.g. `/internal`. Env: `SEXTANT_ENDPOINTS_PREFIX`. Default `''`. */
  prefix?: string;
  /**
   * Bearer token required by `/metrics` and `/health/detailed`, when set (liveness and readiness
   * stay open for probes). An RFC 6750 token: letters, digits, `-._~+/`, then optional `=`; no
   * whitespace, so trim a value read from a file. Env: `SEXTANT_ENDPOINTS_TOKEN` (trimmed; set
   * but blank stops start-up).
   */
  token?: string;
}

export interface SextantShutdownOptions {
  /** Call `shutdown()` on SIGTERM and SIGINT. Env: `SEXTANT_HANDLE_SIGNALS`. Default `false`. */
  handleSignals?: boolean;
  /** Longest wait for in-flight work before flushing anyway. Env: `SEXTANT_SHUTDOWN_TIMEOUT_MS`. Default 10000. */
  timeoutMs?: number;
}

export interface SextantOptions {
  /** Env: `OTEL_SERVICE_NAME`. Default `unknown_service:node`. */
  serviceName?: string;
  /** Env: `SEXTANT_SERVICE_VERSION`. Default: none. */
  serviceVersion?: string;
  /** `deployment.environment.name`. Env: `SEXTANT_ENVIRONMENT`, else `NODE_ENV`. Default `development`. */
  environment?: string;
  /** `service.instance.id`. Default: a random UUID per process. */
  serviceInstanceId?: string;
  /** Extra resource attributes. Env: `OTEL_RESOURCE_ATTRIBUTES` (merged, environment wins). */
  resourceAttributes?: Record<string, string>;
  tracing?: SextantTracingOptions;
  metrics?: SextantMetricsOptions;
  logs?: SextantLogsOptions;
  health?: SextantHealthOptions;
  http?: SextantHttpOptions;
  endpoints?: SextantEndpointsOptions;
  shutdown?: SextantShutdownOptions;
  /** Failures inside Sextant are logged at most once per this interval, per kind. Default 60000 ms. */
  internalErrorLogIntervalMs?: number;
  /** Environment to read instead of `process.env` (tests). */
  env?: Record<string, string | undefined>;
}

export interface ResolvedConfig {
  readonly serviceName: string;
  readonly serviceVersion: string | undefined;
  readonly environment: string;
  readonly serviceInstanceId: string;
  readonly resourceAttributes: Readonly<Record<string, string>>;
  readonly tracing: {
    readonly enabled: boolean;
    readonly exporter: TracesExporterName | SpanExporter;
    readonly endpoint: string;
    /** Where spans are posted: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as is, else `endpoint` + `/v1/traces`. */
    readonly tracesUrl: string;
    /** Longest one OTLP request may take. `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, `OTEL_EXPORTER_OTLP_TIMEOUT`; default 10000. */
    readonly otlpTimeoutMillis: number;
    readonly protocol: OtlpProtocol;
    readonly headers: Readonly<Record<string, string>>;
    readonly sampler: TracesSamplerName;
    readonly samplerRatio: number;
    readonly batch: Readonly<BatchOptions>;
    readonly attributeValueLengthLimit: number;
  };
  readonly metrics: {
    readonly enabled: boolean;
    readonly defaultMetrics: boolean;
    readonly seriesLimit: number;
    readonly collectTimeoutMs: number;
    readonly httpDurationBuckets: readonly number[];
  };
  readonly logs: {
    readonly level: LogLevel;
    readonly destination: DestinationStream | undefined;
    readonly redactKeys: readonly string[];
    readonly accessLog: boolean;
    readonly sync: boolean;
  };
  readonly health: {
    readonly checkTimeoutMs: number;
    readonly eventLoopLagThresholdMs: number;
    readonly heapUsedRatioThreshold: number;
  };
  readonly http: {
    readonly requestIdHeader: string;
    readonly ignorePaths: readonly string[];
  };
  readonly endpoints: {
    readonly prefix: string;
    readonly token: string | undefined;
  };
  readonly shutdown: {
    readonly handleSignals: boolean;
    readonly timeoutMs: number;
  };
  readonly internalErrorLogIntervalMs: number;
}

/** OpenTelemetry's advised buckets for `http.server.request.duration`. */
export const HTTP_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
]);

export const DEFAULT_OPTIONS = Object.freeze({
  serviceName: 'unknown_service:node',
  environment: 'development',
  tracing: Object.freeze({
    enabled: true,
    exporter: 'otlp' as TracesExporterName,
    endpoint: 'http://localhost:4318',
    protocol: 'http/protobuf' as OtlpProtocol,
    sampler: 'parentbased_always_on' as TracesSamplerName,
    samplerRatio: 1,
    batch: Object.freeze({
      maxQueueSize: 2048,
      maxExportBatchSize: 512,
      scheduledDelayMillis: 5000,
      exportTimeoutMillis: 30000,
    }),
    attributeValueLengthLimit: 4096,
  }),
  metrics: Object.freeze({ enabled: true, defaultMetrics: true, seriesLimit: 2000, collectTimeoutMs: 2000 }),
  logs: Object.freeze({ level: 'info' as LogLevel, accessLog: true, sync: false }),
  health: Object.freeze({ checkTimeoutMs: 500, eventLoopLagThresholdMs: 1000, heapUsedRatioThreshold: 0.95 }),
  http: Object.freeze({ requestIdHeader: 'x-request-id' }),
  endpoints: Object.freeze({ prefix: '' }),
  shutdown: Object.freeze({ handleSignals: false, timeoutMs: 10000 }),
  internalErrorLogIntervalMs: 60000,
});

const EXPORTERS: readonly TracesExporterName[] = ['otlp', 'console', 'memory', 'none'];
const SAMPLERS: readonly TracesSamplerName[] = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
];
const PROTOCOLS: readonly OtlpProtocol[] = ['http/protobuf', 'http/json'];
const LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

type Env = Record<string, string | undefined>;

/**
 * How an invalid `OTEL_*` value is handled: the OpenTelemetry specification says warn (once,
 * naming the variable, the value and what is allowed) and use the default.
 */
export type ConfigWarning = { code: string; message: string };

interface Reader {
  env: Env;
  warnings: ConfigWarning[];
}

function otelInvalid(reader: Reader, name: string, value: string, allowed: string): void {
  reader.warnings.push({
    code: 'SEXTANT_INVALID_OTEL_ENV',
    message: `@sextant/core: ignoring ${name}=${describeValue(value)}: expected ${allowed}; using the default`,
  });
}

function sextantInvalid(name: string, value: string, allowed: string): never {
  throw new SextantConfigError(
    ERROR_CODES.INVALID_ENV,
    `${name}=${describeValue(value)} is invalid: expected ${allowed}`,
  );
}

function optionInvalid(path: string, value: unknown, allowed: string): never {
  throw new SextantConfigError(
    ERROR_CODES.INVALID_OPTION,
    `option ${path} is ${describeValue(value)}: expected ${allowed}`,
  );
}

function envValue(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  return trimmed === '' ? undefined : trimmed;
}

const BOOLEAN_ALLOWED = '"true" or "false"';

function parseBoolean(text: string): boolean | undefined {
  const lower = text.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  return undefined;
}

function parseNumber(text: string, min: number, max: number, integer: boolean): number | undefined {
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text)) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max) return undefined;
  if (integer && !Number.isInteger(value)) return undefined;
  return value;
}

function describeRange(min: number, max: number, integer: boolean): string {
  const kind = integer ? 'an integer' : 'a number';
  return max === Number.MAX_SAFE_INTEGER ? `${kind} >= ${min}` : `${kind} from ${min} to ${max}`;
}

// ---- option (code) validation: fail fast ----

function checkBoolean(path: string, value: unknown): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') optionInvalid(path, value, 'a boolean');
  return value;
}

function checkString(path: string, value: unknown, pattern?: RegExp, allowed?: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || (pattern && !pattern.test(value))) {
    optionInvalid(path, value, allowed ?? 'a non-empty string');
  }
  return value;
}

function checkNumber(
  path: string,
  value: unknown,
  min: number,
  max: number,
  integer: boolean,
): number | undefined {
  if (value === undefined) return undefined;
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < min ||
    value > max ||
    (integer && !Number.isInteger(value))
  ) {
    optionInvalid(path, value, describeRange(min, max, integer));
  }
  return value;
}

function checkOneOf<T extends string>(path: string, value: unknown, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    optionInvalid(path, value, `one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
  }
  return value as T;
}

function checkStringRecord(path: string, value: unknown): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    optionInvalid(path, value, 'an object of string values');
  }
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== 'string') optionInvalid(`${path}.${key}`, entry, 'a string');
  }
  return value as Record<string, string>;
}

function checkObject(path: string, value: unknown): Record<string, unknown> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    optionInvalid(path, value, 'an object');
  }
  return value as Record<string, unknown>;
}

function checkKnownKeys(path: string, value: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new SextantConfigError(
        ERROR_CODES.INVALID_OPTION,
        `unknown option ${path ? `${path}.` : ''}${key}: expected one of ${known.join(', ')}`,
      );
    }
  }
}

// ---- environment readers ----

function sextantBoolean(env: Env, name: string): boolean | undefined {
  const text = envValue(env, name);
  if (text === undefined) return undefined;
  return parseBoolean(text) ?? sextantInvalid(name, text, BOOLEAN_ALLOWED);
}

function sextantNumber(
  env: Env,
  name: string,
  min: number,
  max: number,
  integer: boolean,
): number | undefined {
  const text = envValue(env, name);
  if (text === undefined) return undefined;
  return parseNumber(text, min, max, integer) ?? sextantInvalid(name, text, describeRange(min, max, integer));
}

function otelNumber(
  reader: Reader,
  name: string,
  min: number,
  max: number,
  integer: boolean,
): number | undefined {
  const text = envValue(reader.env, name);
  if (text === undefined) return undefined;
  const value = parseNumber(text, min, max, integer);
  if (value === undefined) otelInvalid(reader, name, text, describeRange(min, max, integer));
  return value;
}

function otelOneOf<T extends string>(reader: Reader, name: string, allowed: readonly T[]): T | undefined {
  const text = envValue(reader.env, name);
  if (text === undefined) return undefined;
  const lower = text.toLowerCase() as T;
  if (allowed.includes(lower)) return lower;
  otelInvalid(reader, name, text, `one of ${allowed.join(', ')}`);
  return undefined;
}

/** `k=v,k2=v2` with percent-encoded values, as OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS use. */
function otelKeyValueList(reader: Reader, name: string): Record<string, string> | undefined {
  const text = envValue(reader.env, name);
  if (text === undefined) return undefined;
  const result: Record<string, string> = {};
  for (const pair of text.split(',')) {
    if (pair.trim() === '') continue;
    const eq = pair.indexOf('=');
    const key = eq > 0 ? pair.slice(0, eq).trim() : '';
    let value: string | undefined;
    try {
      value = eq > 0 ? decodeURIComponent(pair.slice(eq + 1).trim()) : undefined;
    } catch {
      value = undefined;
    }
    if (key === '' || value === undefined) {
      // The specification: an invalid list is discarded whole.
      // Header values are credentials (an API key): that warning names the keys only.
      otelInvalid(
        reader,
        name,
        name.endsWith('_HEADERS') ? keysOnly(text) : text,
        'a comma-separated list of key=value pairs with percent-encoded values',
      );
      return undefined;
    }
    result[key] = value;
  }
  return result;
}

/** A key=value list as a warning may show it: each value, and each part that is no pair, masked. */
function keysOnly(text: string): string {
  return text
    .split(',')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq > 0) return `${pair.slice(0, eq).trim()}=[REDACTED]`;
      return pair.trim() === '' ? '' : '[not key=value]';
    })
    .join(',');
}

const URL_ALLOWED = 'an absolute http:// or https:// URL';

/**
 * The environment's value when it is set, else the option's. Both arguments are evaluated, so an
 * invalid option in code throws whether or not the variable is set: a configuration that starts
 * where the variable is set must not fail where it is not.
 */
function envOr<T>(fromEnv: T | undefined, fromOption: T | undefined): T | undefined {
  return fromEnv ?? fromOption;
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

function resolveExporter(reader: Reader, option: unknown): TracesExporterName | SpanExporter {
  const fromOption = exporterOption(option);
  const text = envValue(reader.env, 'OTEL_TRACES_EXPORTER');
  if (text !== undefined) {
    // The variable may list several exporters; Sextant takes the first it knows.
    const names = text.split(',').map((n) => n.trim().toLowerCase());
    const known = names.find((n): n is TracesExporterName => EXPORTERS.includes(n as TracesExporterName));
    if (known) return known;
    otelInvalid(reader, 'OTEL_TRACES_EXPORTER', text, `one of ${EXPORTERS.join(', ')}`);
  }
  return fromOption;
}

function exporterOption(option: unknown): TracesExporterName | SpanExporter {
  if (option === undefined) return DEFAULT_OPTIONS.tracing.exporter;
  if (
    typeof option === 'object' &&
    option !== null &&
    typeof (option as SpanExporter).export === 'function'
  ) {
    return option as SpanExporter;
  }
  return checkOneOf('tracing.exporter', option, EXPORTERS) as TracesExporterName;
}

const TOP_KEYS = [
  'serviceName',
  'serviceVersion',
  'environment',
  'serviceInstanceId',
  'resourceAttributes',
  'tracing',
  'metrics',
  'logs',
  'health',
  'http',
  'endpoints',
  'shutdown',
  'internalErrorLogIntervalMs',
  'env',
] as const;

export interface ConfigResolution {
  config: ResolvedConfig;
  /** Invalid `OTEL_*` values that were replaced by defaults; the caller logs each once. */
  warnings: ConfigWarning[];
}

/**
 * Merges options in code, the environment (which wins) and the defaults, once, at start-up.
 * Throws a {@link SextantConfigError} for an invalid option or `SEXTANT_*` value.
 */
export function resolveConfig(options: SextantOptions = {}): ConfigResolution {
  const root = checkObject('options', options);
  checkKnownKeys('', root, TOP_KEYS);
  const env: Env = (root.env as Env | undefined) ?? process.env;
  const reader: Reader = { env, warnings: [] };

  const tracingOpts = checkObject('tracing', root.tracing);
  checkKnownKeys('tracing', tracingOpts, [
    'enabled',
    'exporter',
    'endpoint',
    'protocol',
    'headers',
    'sampler',
    'samplerRatio',
    'batch',
    'attributeValueLengthLimit',
  ]);
  const batchOpts = checkObject('tracing.batch', tracingOpts.batch);
  checkKnownKeys('tracing.batch', batchOpts, [
    'maxQueueSize',
    'maxExportBatchSize',
    'scheduledDelayMillis',
    'exportTimeoutMillis',
  ]);
  const metricsOpts = checkObject('metrics', root.metrics);
  checkKnownKeys('metrics', metricsOpts, [
    'enabled',
    'defaultMetrics',
    'seriesLimit',
    'collectTimeoutMs',
    'httpDurationBuckets',
  ]);
  const logsOpts = checkObject('logs', root.logs);
  checkKnownKeys('logs', logsOpts, ['level', 'destination', 'redactKeys', 'accessLog', 'sync']);
  const healthOpts = checkObject('health', root.health);
  checkKnownKeys('health', healthOpts, [
    'checkTimeoutMs',
    'eventLoopLagThresholdMs',
    'heapUsedRatioThreshold',
  ]);
  const httpOpts = checkObject('http', root.http);
  checkKnownKeys('http', httpOpts, ['requestIdHeader', 'ignorePaths']);
  const endpointsOpts = checkObject('endpoints', root.endpoints);
  checkKnownKeys('endpoints', endpointsOpts, ['prefix', 'token']);
  const shutdownOpts = checkObject('shutdown', root.shutdown);
  checkKnownKeys('shutdown', shutdownOpts, ['handleSignals', 'timeoutMs']);

  // OTEL_SDK_DISABLED: only "true" (case-insensitive) disables; anything else is false per the specification.
  const sdkDisabledText = envValue(env, 'OTEL_SDK_DISABLED');
  let sdkDisabled: boolean | undefined;
  if (sdkDisabledText !== undefined) {
    sdkDisabled = parseBoolean(sdkDisabledText);
    if (sdkDisabled === undefined) {
      otelInvalid(reader, 'OTEL_SDK_DISABLED', sdkDisabledText, BOOLEAN_ALLOWED);
      sdkDisabled = false;
    }
  }

  const endpointEnv = envValue(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  let endpoint = checkString('tracing.endpoint', tracingOpts.endpoint);
  if (endpoint !== undefined && !isHttpUrl(endpoint))
    optionInvalid('tracing.endpoint', endpoint, URL_ALLOWED);
  if (endpointEnv !== undefined) {
    if (isHttpUrl(endpointEnv)) endpoint = endpointEnv;
    else otelInvalid(reader, 'OTEL_EXPORTER_OTLP_ENDPOINT', endpointEnv, URL_ALLOWED);
  }

  const tracesEndpointEnv = envValue(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  let tracesUrl: string | undefined;
  if (tracesEndpointEnv !== undefined) {
    if (isHttpUrl(tracesEndpointEnv)) tracesUrl = tracesEndpointEnv;
    else otelInvalid(reader, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', tracesEndpointEnv, URL_ALLOWED);
  }
  const resolvedEndpoint = endpoint ?? DEFAULT_OPTIONS.tracing.endpoint;

  const samplerRatioOption = checkNumber('tracing.samplerRatio', tracingOpts.samplerRatio, 0, 1, false);
  const batchNumber = (key: keyof BatchOptions, envName: string, min: number) =>
    envOr(
      otelNumber(reader, envName, min, Number.MAX_SAFE_INTEGER, true),
      checkNumber(`tracing.batch.${key}`, batchOpts[key], min, Number.MAX_SAFE_INTEGER, true),
    ) ?? DEFAULT_OPTIONS.tracing.batch[key];
  const batch: BatchOptions = {
    maxQueueSize: batchNumber('maxQueueSize', 'OTEL_BSP_MAX_QUEUE_SIZE', 1),
    maxExportBatchSize: batchNumber('maxExportBatchSize', 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 1),
    scheduledDelayMillis: batchNumber('scheduledDelayMillis', 'OTEL_BSP_SCHEDULE_DELAY', 0),
    exportTimeoutMillis: batchNumber('exportTimeoutMillis', 'OTEL_BSP_EXPORT_TIMEOUT', 0),
  };
  // Both checked above as integers when given.
  const codeBatchSize = batchOpts.maxExportBatchSize as number | undefined;
  const codeQueueSize = batchOpts.maxQueueSize as number | undefined;
  if (codeBatchSize !== undefined && codeQueueSize !== undefined && codeBatchSize > codeQueueSize) {
    optionInvalid(
      'tracing.batch.maxExportBatchSize',
      codeBatchSize,
      `at most tracing.batch.maxQueueSize (${codeQueueSize})`,
    );
  }
  if (batch.maxExportBatchSize > batch.maxQueueSize) {
    // The specification: the batch size must not exceed the queue size (from the environment,
    // or a code option against the default or the environment's queue size, it is capped).
    batch.maxExportBatchSize = batch.maxQueueSize;
  }

  const httpBuckets = metricsOpts.httpDurationBuckets;
  if (
    httpBuckets !== undefined &&
    (!Array.isArray(httpBuckets) ||
      httpBuckets.length === 0 ||
      httpBuckets.some(
        (b, i) => typeof b !== 'number' || !Number.isFinite(b) || (i > 0 && b <= httpBuckets[i - 1]),
      ))
  ) {
    optionInvalid(
      'metrics.httpDurationBuckets',
      httpBuckets,
      'a non-empty array of finite numbers in increasing order',
    );
  }

  const redactKeys = logsOpts.redactKeys;
  if (
    redactKeys !== undefined &&
    (!Array.isArray(redactKeys) || redactKeys.some((k) => typeof k !== 'string' || k.length === 0))
  ) {
    optionInvalid('logs.redactKeys', redactKeys, 'an array of non-empty strings');
  }
  const destination = logsOpts.destination;
  if (
    destination !== undefined &&
    (typeof destination !== 'object' ||
      destination === null ||
      typeof (destination as any).write !== 'function')
  ) {
    optionInvalid('logs.destination', destination, 'a stream with a write(line) method');
  }

  const ignorePaths = httpOpts.ignorePaths;
  if (
    ignorePaths !== undefined &&
    (!Array.isArray(ignorePaths) || ignorePaths.some((p) => typeof p !== 'string' || !p.startsWith('/')))
  ) {
    optionInvalid('http.ignorePaths', ignorePaths, 'an array of paths starting with "/"');
  }

  const prefixPattern = /^(\/[A-Za-z0-9._~-]+)*$/;
  const prefixAllowed = 'a path such as "/internal" (no trailing slash), or ""';
  let prefix = checkPrefix(endpointsOpts.prefix, prefixPattern, prefixAllowed);
  const prefixEnv = envValue(env, 'SEXTANT_ENDPOINTS_PREFIX');
  if (prefixEnv !== undefined) {
    if (!prefixPattern.test(prefixEnv)) sextantInvalid('SEXTANT_ENDPOINTS_PREFIX', prefixEnv, prefixAllowed);
    prefix = prefixEnv;
  }

  const levelEnv = envValue(env, 'SEXTANT_LOG_LEVEL');
  let level = checkOneOf('logs.level', logsOpts.level, LEVELS);
  if (levelEnv !== undefined) {
    const lower = levelEnv.toLowerCase() as LogLevel;
    if (!LEVELS.includes(lower)) sextantInvalid('SEXTANT_LOG_LEVEL', levelEnv, `one of ${LEVELS.join(', ')}`);
    level = lower;
  }

  const resourceAttributes = {
    ...checkStringRecord('resourceAttributes', root.resourceAttributes),
    ...otelKeyValueList(reader, 'OTEL_RESOURCE_ATTRIBUTES'),
  };

  const config: ResolvedConfig = {
    serviceName:
      envOr(envValue(env, 'OTEL_SERVICE_NAME'), checkString('serviceName', root.serviceName)) ??
      resourceAttributes['service.name'] ??
      DEFAULT_OPTIONS.serviceName,
    // OTEL_RESOURCE_ATTRIBUTES may name these too: below the dedicated variable and option, as
    // for service.name, so that logs, health and spans all say the same.
    serviceVersion:
      envOr(envValue(env, 'SEXTANT_SERVICE_VERSION'), checkString('serviceVersion', root.serviceVersion)) ??
      resourceAttributes['service.version'],
    environment:
      envOr(envValue(env, 'SEXTANT_ENVIRONMENT'), checkString('environment', root.environment)) ??
      resourceAttributes['deployment.environment.name'] ??
      envValue(env, 'NODE_ENV') ??
      DEFAULT_OPTIONS.environment,
    serviceInstanceId:
      checkString('serviceInstanceId', root.serviceInstanceId) ??
      resourceAttributes['service.instance.id'] ??
      crypto.randomUUID(),
    resourceAttributes: Object.freeze(resourceAttributes),
    tracing: Object.freeze({
      enabled:
        envOr(
          sdkDisabled === true ? false : undefined,
          checkBoolean('tracing.enabled', tracingOpts.enabled),
        ) ?? true,
      exporter: resolveExporter(reader, tracingOpts.exporter),
      endpoint: resolvedEndpoint,
      tracesUrl: tracesUrl ?? `${resolvedEndpoint.replace(/\/+$/, '')}/v1/traces`,
      otlpTimeoutMillis:
        otelNumber(reader, 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', 1, 3_600_000, true) ??
        otelNumber(reader, 'OTEL_EXPORTER_OTLP_TIMEOUT', 1, 3_600_000, true) ??
        10_000,
      protocol:
        envOr(
          otelOneOf(reader, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', PROTOCOLS) ??
            otelOneOf(reader, 'OTEL_EXPORTER_OTLP_PROTOCOL', PROTOCOLS),
          checkOneOf('tracing.protocol', tracingOpts.protocol, PROTOCOLS),
        ) ?? DEFAULT_OPTIONS.tracing.protocol,
      headers: Object.freeze({
        ...checkStringRecord('tracing.headers', tracingOpts.headers),
        ...otelKeyValueList(reader, 'OTEL_EXPORTER_OTLP_HEADERS'),
        ...otelKeyValueList(reader, 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'),
      }),
      sampler:
        envOr(
          otelOneOf(reader, 'OTEL_TRACES_SAMPLER', SAMPLERS),
          checkOneOf('tracing.sampler', tracingOpts.sampler, SAMPLERS),
        ) ?? DEFAULT_OPTIONS.tracing.sampler,
      samplerRatio:
        otelNumber(reader, 'OTEL_TRACES_SAMPLER_ARG', 0, 1, false) ??
        samplerRatioOption ??
        DEFAULT_OPTIONS.tracing.samplerRatio,
      batch: Object.freeze(batch),
      attributeValueLengthLimit:
        envOr(
          otelNumber(reader, 'OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT', 1, Number.MAX_SAFE_INTEGER, true),
          checkNumber(
            'tracing.attributeValueLengthLimit',
            tracingOpts.attributeValueLengthLimit,
            1,
            Number.MAX_SAFE_INTEGER,
            true,
          ),
        ) ?? DEFAULT_OPTIONS.tracing.attributeValueLengthLimit,
    }),
    metrics: Object.freeze({
      enabled:
        envOr(
          sextantBoolean(env, 'SEXTANT_METRICS_ENABLED'),
          checkBoolean('metrics.enabled', metricsOpts.enabled),
        ) ?? DEFAULT_OPTIONS.metrics.enabled,
      defaultMetrics:
        envOr(
          sextantBoolean(env, 'SEXTANT_METRICS_DEFAULT'),
          checkBoolean('metrics.defaultMetrics', metricsOpts.defaultMetrics),
        ) ?? DEFAULT_OPTIONS.metrics.defaultMetrics,
      seriesLimit:
        envOr(
          sextantNumber(env, 'SEXTANT_METRICS_SERIES_LIMIT', 1, 1_000_000, true),
          checkNumber('metrics.seriesLimit', metricsOpts.seriesLimit, 1, 1_000_000, true),
        ) ?? DEFAULT_OPTIONS.metrics.seriesLimit,
      collectTimeoutMs:
        envOr(
          sextantNumber(env, 'SEXTANT_METRICS_COLLECT_TIMEOUT_MS', 1, 60_000, true),
          checkNumber('metrics.collectTimeoutMs', metricsOpts.collectTimeoutMs, 1, 60_000, true),
        ) ?? DEFAULT_OPTIONS.metrics.collectTimeoutMs,
      httpDurationBuckets: Object.freeze([
        ...((httpBuckets as number[] | undefined) ?? HTTP_DURATION_BUCKETS),
      ]),
    }),
    logs: Object.freeze({
      level: level ?? DEFAULT_OPTIONS.logs.level,
      destination: destination as DestinationStream | undefined,
      redactKeys: Object.freeze([...((redactKeys as string[] | undefined) ?? [])]),
      accessLog:
        envOr(
          sextantBoolean(env, 'SEXTANT_ACCESS_LOG'),
          checkBoolean('logs.accessLog', logsOpts.accessLog),
        ) ?? DEFAULT_OPTIONS.logs.accessLog,
      sync:
        envOr(sextantBoolean(env, 'SEXTANT_LOG_SYNC'), checkBoolean('logs.sync', logsOpts.sync)) ??
        DEFAULT_OPTIONS.logs.sync,
    }),
    health: Object.freeze({
      checkTimeoutMs:
        envOr(
          sextantNumber(env, 'SEXTANT_HEALTH_TIMEOUT_MS', 1, 600_000, true),
          checkNumber('health.checkTimeoutMs', healthOpts.checkTimeoutMs, 1, 600_000, true),
        ) ?? DEFAULT_OPTIONS.health.checkTimeoutMs,
      eventLoopLagThresholdMs:
        checkNumber(
          'health.eventLoopLagThresholdMs',
          healthOpts.eventLoopLagThresholdMs,
          1,
          600_000,
          false,
        ) ?? DEFAULT_OPTIONS.health.eventLoopLagThresholdMs,
      heapUsedRatioThreshold:
        checkNumber('health.heapUsedRatioThreshold', healthOpts.heapUsedRatioThreshold, 0.01, 1, false) ??
        DEFAULT_OPTIONS.health.heapUsedRatioThreshold,
    }),
    http: Object.freeze({
      requestIdHeader: (
        checkString(
          'http.requestIdHeader',
          httpOpts.requestIdHeader,
          /^[A-Za-z0-9-]{1,64}$/,
          'a header name of letters, digits and dashes',
        ) ?? DEFAULT_OPTIONS.http.requestIdHeader
      ).toLowerCase(),
      ignorePaths: Object.freeze([...((ignorePaths as string[] | undefined) ?? [])]),
    }),
    endpoints: Object.freeze({
      prefix: prefix ?? DEFAULT_OPTIONS.endpoints.prefix,
      token: envOr(sextantToken(env), checkToken(endpointsOpts.token)),
    }),
    shutdown: Object.freeze({
      handleSignals:
        envOr(
          sextantBoolean(env, 'SEXTANT_HANDLE_SIGNALS'),
          checkBoolean('shutdown.handleSignals', shutdownOpts.handleSignals),
        ) ?? DEFAULT_OPTIONS.shutdown.handleSignals,
      timeoutMs:
        envOr(
          sextantNumber(env, 'SEXTANT_SHUTDOWN_TIMEOUT_MS', 0, 3_600_000, true),
          checkNumber('shutdown.timeoutMs', shutdownOpts.timeoutMs, 0, 3_600_000, true),
        ) ?? DEFAULT_OPTIONS.shutdown.timeoutMs,
    }),
    internalErrorLogIntervalMs:
      checkNumber('internalErrorLogIntervalMs', root.internalErrorLogIntervalMs, 0, 86_400_000, true) ??
      DEFAULT_OPTIONS.internalErrorLogIntervalMs,
  };
  return { config: Object.freeze(config), warnings: reader.warnings };
}

// ---- endpoints token ----

/** RFC 6750's b64token (token68): all a client can send after `Bearer `. */
const TOKEN68 = /^[A-Za-z0-9._~+/-]+=*$/;
const TOKEN_CHARACTER = /[A-Za-z0-9._~+/-]/;
const TOKEN_ALLOWED =
  'a bearer token (RFC 6750): letters, digits, "-", ".", "_", "~", "+" or "/", then optional "=" padding';
const TOKEN_NOT_SHOWN = '(the value is not shown: it is a secret)';

/** What is wrong with a token, located but never quoted: the message ends up in logs. */
function tokenProblem(value: string): string | undefined {
  if (TOKEN68.test(value)) return undefined;
  if (value === '') return 'it is empty';
  const at = (index: number) => `at character ${index + 1} of ${value.length}`;
  const whitespace = value.search(/\s/);
  if (whitespace !== -1) {
    const trailing = value.trimEnd().length <= whitespace;
    return `it contains whitespace ${at(whitespace)}${trailing ? ' (a value read from a file keeps its trailing newline: trim it)' : ''}`;
  }
  const padding = value.search(/=*$/);
  if (padding === 0) return 'it is only "=" padding';
  for (let index = 0; index < padding; index++) {
    const character = value[index] as string;
    if (character === '=') return `it contains "=" before its end ${at(index)}`;
    if (!TOKEN_CHARACTER.test(character)) return `it contains a character not allowed ${at(index)}`;
  }
  return 'it is not a bearer token';
}

/**
 * The token from code must be exactly what clients send: the header value is trimmed, so a token
 * with a trailing newline (read from a secret file) would refuse every request while start-up said
 * nothing. It is refused rather than trimmed, like any other invalid option in code: a secret
 * that is not what the operator meant to configure is a mistake to show at start-up, not to guess
 * at, and the application that read the file is the one place that knows what it meant.
 */
function checkToken(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  const problem = typeof value === 'string' ? tokenProblem(value) : `it is a ${describeType(value)}`;
  if (problem === undefined) return value as string;
  throw new SextantConfigError(
    ERROR_CODES.INVALID_OPTION,
    `option endpoints.token is invalid: ${problem}: expected ${TOKEN_ALLOWED} ${TOKEN_NOT_SHOWN}`,
  );
}

/**
 * Environment values are trimmed like every other one. Blank is refused where elsewhere it means
 * unset: for this variable it is almost always a secret that failed to mount, and reading it as
 * unset would serve the metrics and the detailed report to anyone. Serving without a token is
 * asked for by leaving the variable out.
 */
function sextantToken(env: Env): string | undefined {
  const raw = env.SEXTANT_ENDPOINTS_TOKEN;
  if (raw === undefined) return undefined;
  const text = raw.trim();
  if (text === '') {
    throw new SextantConfigError(
      ERROR_CODES.INVALID_ENV,
      `SEXTANT_ENDPOINTS_TOKEN is set but blank (a secret that failed to mount?): expected ${TOKEN_ALLOWED}, or the variable left unset to serve the endpoints without a token`,
    );
  }
  const problem = tokenProblem(text);
  if (problem === undefined) return text;
  throw new SextantConfigError(
    ERROR_CODES.INVALID_ENV,
    `SEXTANT_ENDPOINTS_TOKEN is invalid: ${problem}: expected ${TOKEN_ALLOWED} ${TOKEN_NOT_SHOWN}`,
  );
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  return Array.isArray(value) ? 'array' : typeof value;
}

function checkPrefix(value: unknown, pattern: RegExp, allowed: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !pattern.test(value)) optionInvalid('endpoints.prefix', value, allowed);
  return value;
}
