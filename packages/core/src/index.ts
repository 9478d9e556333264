// Sextant core: the public API is exactly what this file names.

// Configuration
export type {
  BatchOptions,
  LogLevel,
  OtlpProtocol,
  ResolvedConfig,
  SextantEndpointsOptions,
  SextantHealthOptions,
  SextantHttpOptions,
  SextantLogsOptions,
  SextantMetricsOptions,
  SextantOptions,
  SextantShutdownOptions,
  SextantTracingOptions,
  TracesExporterName,
  TracesSamplerName,
} from './config.ts';
export { DEFAULT_OPTIONS, HTTP_DURATION_BUCKETS, resolveConfig } from './config.ts';
// Context and propagation
export type { RequestState } from './context.ts';
export { getRequestId, getRequestState, runWithRequestId, setTenant, setUser } from './context.ts';
export type {
  EndpointName,
  EndpointRequest,
  EndpointResponse,
  Endpoints,
  MetricsSource,
} from './endpoints.ts';
export { ERROR_CODES, SextantConfigError } from './errors.ts';
// Health, endpoints, lifecycle
export type {
  CheckReport,
  Health,
  HealthCheck,
  HealthCheckResult,
  HealthMemory,
  HealthReport,
  HealthResponse,
  HealthStatus,
} from './health.ts';
export { down, up } from './health.ts';
// HTTP primitives for adapters
export type { HttpExchange, HttpInstrumentation, HttpRequestInfo, HttpRequestOutcome } from './http.ts';
export { UNMATCHED_ROUTE } from './http.ts';
export type { InFlight } from './in-flight.ts';
export type { InternalErrorSink } from './internal-errors.ts';
export { safeCall } from './internal-errors.ts';
export { METRICS } from './metric-names.ts';

// Metrics
export type {
  CounterDefinition,
  GaugeDefinition,
  HistogramDefinition,
  HttpServerMetrics,
  Metrics,
  SextantCounter,
  SextantGauge,
  SextantHistogram,
} from './metrics.ts';
export {
  createPropagator,
  extractContext,
  generateRequestId,
  injectContext,
  sanitizeRequestId,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from './propagation.ts';

// Logs
export type { Redactor, RedactorOptions } from './redact.ts';
export { createRedactor } from './redact.ts';
// Instance
export type { Sextant } from './sextant.ts';
export { createSextant } from './sextant.ts';
export type { TracedOptions } from './traced.ts';
export { Traced, traced } from './traced.ts';
// Tracing
export type { Tracing, TracingStats } from './tracing.ts';
