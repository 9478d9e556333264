// Sextant core: the public API is exactly what this file names, grouped by concept.

// Instance
export type { Sextant } from './sextant.ts';
export { createSextant } from './sextant.ts';

// Configuration and errors
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
export { ERROR_CODES, SextantConfigError } from './errors.ts';
export type { InternalErrorSink } from './internal-errors.ts';
export { safeCall } from './internal-errors.ts';

// Loggers
export type { ChildLoggerFactory } from './deferred-child-logger.ts';
export { createDeferredChildLoggerFactory } from './deferred-child-logger.ts';

// Context and propagation
export type { RequestState } from './context.ts';
export {
  contextWithSpan,
  contextWithValue,
  createRequestContext,
  createRequestState,
  getRequestId,
  getRequestState,
  runWithRequestId,
  setRequestState,
  setTenant,
  setUser,
} from './context.ts';
export {
  createPropagator,
  extractContext,
  generateRequestId,
  injectContext,
  sanitizeRequestId,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from './propagation.ts';

// Tracing
export type { SpanDropReason } from './span-processor.ts';
export type { SettleResult, TracedDecorator, TracedOptions } from './traced.ts';
export { recordSpanError, Traced, traced } from './traced.ts';
export type { Tracing, TracingStats } from './tracing.ts';
export { TRACER_NAME } from './tracing.ts';

// HTTP primitives for adapters
export type { HttpExchange, HttpInstrumentation, HttpRequestInfo, HttpRequestOutcome } from './http.ts';
export { UNMATCHED_ROUTE } from './http.ts';

// Semantic conventions that are still incubating upstream
export {
  ATTR_MESSAGING_BATCH_MESSAGE_COUNT,
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  DB_SYSTEM_NAME_VALUE_SQLITE,
} from './semconv.ts';

// Metrics
export type { MetricDescriptor, MetricErrorReason, MetricType } from './metric-names.ts';
export { METRIC_ERROR_REASONS, METRICS } from './metric-names.ts';
export type {
  CounterDefinition,
  GaugeDefinition,
  HistogramDefinition,
  HttpServerMetrics,
  LabelValues,
  Metrics,
  SextantCounter,
  SextantGauge,
  SextantHistogram,
  SextantCounterChild,
  SextantHistogramChild,
} from './metrics.ts';

// Domain tracers: sextant.quantum and sextant.business
export type { BusinessKpi, BusinessOutcome, BusinessTracer, BusinessUnit } from './business.ts';
export { BUSINESS_ATTRIBUTES } from './business.ts';
export type {
  CircuitBreakerLike,
  QuantumCompletion,
  QuantumFallback,
  QuantumFallbackReason,
  QuantumJob,
  QuantumJobCarrier,
  QuantumJobOutcome,
  QuantumJobSpec,
  QuantumJobState,
  QuantumTracer,
} from './quantum.ts';
export { CIRCUIT_BREAKER_STATE, QUANTUM_ATTRIBUTES, QUANTUM_JOB_CARRIER_KEY } from './quantum.ts';

// Logs
export type { Redactor, RedactorOptions } from './redact.ts';
export { createRedactor, setSafeErrorMessage } from './redact.ts';

// Health, endpoints, lifecycle
export type {
  EndpointName,
  EndpointRequest,
  EndpointResponse,
  Endpoints,
  MetricsSource,
} from './endpoints.ts';
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
export type { InFlight } from './in-flight.ts';
