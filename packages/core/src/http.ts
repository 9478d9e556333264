import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import {
  type Attributes,
  type Context,
  context,
  INVALID_SPANID,
  INVALID_TRACEID,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_SERVER_ADDRESS,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { Logger } from 'pino';
import type { ResolvedConfig } from './config.ts';
import { createRequestContext, createRequestState, getRequestState, type RequestState } from './context.ts';
import type { Endpoints } from './endpoints.ts';
import type { InFlight } from './in-flight.ts';
import type { InternalErrorSink } from './internal-errors.ts';
import { writeAccessLog } from './logger.ts';
import type { HttpServerMetrics } from './metrics.ts';
import { extractContext, generateRequestId, sanitizeRequestId } from './propagation.ts';
import { exportedException, type Redactor } from './redact.ts';

/** The one label value that every request matching no route shares, so unknown URLs cannot grow series. */
export const UNMATCHED_ROUTE = '_unmatched';

/** What an adapter knows about an incoming request when it starts. */
export interface HttpRequestInfo {
  method: string;
  /** The request target as received (`/users/7?x=1`); only its path is recorded. */
  url: string;
  headers: IncomingHttpHeaders;
  scheme?: 'http' | 'https';
  remoteAddress?: string | undefined;
  httpVersion?: string | undefined;
  /**
   * A correlation id the framework already chose (Fastify's `genReqId`), used as is; otherwise
   * the sanitized request-id header, or a generated one.
   */
  requestId?: string | undefined;
}

/** How the request ended, as the adapter saw it. */
export interface HttpRequestOutcome {
  statusCode: number;
  /** The framework's route template (`/users/:id`); omitted when no route matched. */
  route?: string | undefined;
  /** An exception thrown or passed along by the handler. */
  error?: unknown;
  responseSize?: number | undefined;
  /** The client went away before the response was sent. */
  aborted?: boolean;
}

/** One server request in flight, returned by {@link HttpInstrumentation.begin}. */
export interface HttpExchange {
  /** Run the handler inside this context (`context.with(exchange.context, next)`). */
  readonly context: Context;
  readonly requestId: string;
  /** Headers to set on the response: the correlation id and `traceresponse` (a new array on each read). */
  readonly responseHeaders: ReadonlyArray<readonly [string, string]>;
  /** False for Sextant's own endpoints and ignored paths: nothing is recorded for them. */
  readonly recorded: boolean;
}

export interface HttpInstrumentation {
  begin(request: HttpRequestInfo): HttpExchange;
  /**
   * The exchange of the request whose context is active (or of `ctx`), for code that sees only
   * the context, such as a NestJS exception filter.
   */
  exchangeOf(ctx?: Context): HttpExchange | undefined;
  /** Remembers an exception for the span, when the framework reports it before the response ends. */
  recordError(exchange: HttpExchange, error: unknown): void;
  /** Ends the span, the metrics and writes the access log record; only the first call counts. */
  end(exchange: HttpExchange, outcome: HttpRequestOutcome): void;
  /**
   * Ends the exchange when a Node response finishes, or closes early (client abort). `route` is
   * read at that moment, after the framework has matched it.
   */
  endOnResponse(exchange: HttpExchange, response: ServerResponse, route: () => string | undefined): void;
}

const KNOWN_METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
]);
const OTHER_METHOD = '_OTHER';
/** On a request's RequestState: its exchange, so code holding only the context can reach it. */
const kExchange = Symbol('sextant.exchange');
const ABORTED = 'aborted';
const TRACE_RESPONSE_HEADER = 'traceresponse';

/**
 * Everything here lives as long as its request. Per-request objects that live that long are class
 * instances, not literals: V8 may allocate a literal's objects straight into the old generation
 * (allocation-site pretenuring, decided after a warm-up burst in which they survived), and an old
 * object keeps whatever young objects it points to alive until the next full collection. Under
 * load that made every minor GC copy and promote megabytes.
 */
class ServerExchange implements HttpExchange {
  ended = false;
  error: unknown = undefined;
  readonly context: Context;
  readonly requestId: string;
  readonly requestIdHeader: string;
  /** The `traceresponse` header's value, when the request has a valid span. */
  readonly traceResponse: string | undefined;
  readonly recorded: boolean;
  readonly span: Span | undefined;
  /** The span belongs to someone else (auto-instrumentation): annotate it, never end it. */
  readonly joined: boolean;
  readonly method: string;
  readonly path: string;
  readonly userAgent: string | undefined;
  readonly startedAt: number;
  readonly finishInFlight: () => void;

  constructor(
    ctx: Context,
    requestId: string,
    requestIdHeader: string,
    traceResponse: string | undefined,
    recorded: boolean,
    span: Span | undefined,
    joined: boolean,
    method: string,
    path: string,
    userAgent: string | undefined,
    startedAt: number,
    finishInFlight: () => void,
  ) {
    this.context = ctx;
    this.requestId = requestId;
    this.requestIdHeader = requestIdHeader;
    this.traceResponse = traceResponse;
    this.recorded = recorded;
    this.span = span;
    this.joined = joined;
    this.method = method;
    this.path = path;
    this.userAgent = userAgent;
    this.startedAt = startedAt;
    this.finishInFlight = finishInFlight;
  }

  get responseHeaders(): ReadonlyArray<readonly [string, string]> {
    const requestIdHeader: readonly [string, string] = [this.requestIdHeader, this.requestId];
    return this.traceResponse === undefined
      ? [requestIdHeader]
      : [requestIdHeader, [TRACE_RESPONSE_HEADER, this.traceResponse]];
  }
}

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function errorType(error: unknown): string {
  if (error instanceof Error) return error.constructor?.name || error.name || 'Error';
  return typeof error;
}

export interface HttpInstrumentationDeps {
  config: ResolvedConfig;
  tracer: Tracer;
  metrics: HttpServerMetrics;
  logger: Logger;
  endpoints: Endpoints;
  inFlight: InFlight;
  sink: InternalErrorSink;
  tracingEnabled: boolean;
  /** What the access log applies; the server span's path and user agent get the same. */
  redactor: Redactor;
}

export function createHttpInstrumentation(deps: HttpInstrumentationDeps): HttpInstrumentation {
  const { config, tracer, metrics, logger, endpoints, inFlight, sink, tracingEnabled, redactor } = deps;
  const ignoredPaths = new Set(config.http.ignorePaths);
  const requestIdHeader = config.http.requestIdHeader;
  const accessLog = config.logs.accessLog;
  const methodNames = new Map<string, string>();
  const noop = () => {};

  const normaliseMethod = (raw: string): string => {
    const cached = methodNames.get(raw);
    if (cached !== undefined) return cached;
    const upper = raw.toUpperCase();
    const method = KNOWN_METHODS.has(upper) ? upper : OTHER_METHOD;
    if (methodNames.size < 64) methodNames.set(raw, method);
    return method;
  };

  // Span names `{method} {route}` come from a bounded set of templates: build each once.
  const spanNames = new Map<string, Map<string, string>>();
  let spanNameCount = 0;
  const spanNameFor = (method: string, route: string): string => {
    let byRoute = spanNames.get(method);
    if (byRoute === undefined) {
      byRoute = new Map();
      spanNames.set(method, byRoute);
    }
    const cached = byRoute.get(route);
    if (cached !== undefined) return cached;
    const name = `${method} ${route}`;
    if (spanNameCount < 10_000) {
      byRoute.set(route, name);
      spanNameCount++;
    }
    return name;
  };

  function unrecorded(requestId: string): HttpExchange {
    return new ServerExchange(
      context.active(),
      requestId,
      requestIdHeader,
      undefined,
      false,
      undefined,
      false,
      '',
      '',
      undefined,
      0,
      noop,
    );
  }

  function begin(request: HttpRequestInfo): HttpExchange {
    const requestId =
      request.requestId ?? sanitizeRequestId(request.headers[requestIdHeader]) ?? generateRequestId();
    const path = pathOf(request.url);
    if (endpoints.isEndpointPath(path) || ignoredPaths.has(path)) return unrecorded(requestId);

    const method = normaliseMethod(request.method);
    const active = context.active();
    const existing = trace.getSpan(active);
    let span: Span | undefined;
    let parent: Context;
    let joined = false;
    const recording = existing?.isRecording() === true;
    if (recording && isServerSpan(existing!)) {
      // Auto-instrumentation already opened the server span for this request: join it.
      span = existing;
      parent = active;
      joined = true;
    } else {
      // Any other recording span here was active when the server started listening (the context
      // follows into every request): no request belongs to it, so it starts from the headers alone.
      parent = extractContext(request.headers, recording || active === ROOT_CONTEXT ? ROOT_CONTEXT : active);
      if (tracingEnabled) {
        // Assigned rather than written as a literal: computed keys in a literal take V8's slow
        // path (a runtime call per key) on every request.
        const attributes: Attributes = {};
        attributes[ATTR_HTTP_REQUEST_METHOD] = method;
        // As the access log writes them: an email or token in a path or a user agent is data too.
        attributes[ATTR_URL_PATH] = redactor.string(path);
        attributes[ATTR_URL_SCHEME] = request.scheme ?? 'http';
        const host = headerValue(request.headers.host);
        if (host !== undefined) attributes[ATTR_SERVER_ADDRESS] = host;
        if (request.remoteAddress !== undefined) attributes[ATTR_CLIENT_ADDRESS] = request.remoteAddress;
        if (request.httpVersion !== undefined)
          attributes[ATTR_NETWORK_PROTOCOL_VERSION] = request.httpVersion;
        const userAgent = headerValue(request.headers['user-agent']);
        if (userAgent !== undefined) attributes[ATTR_USER_AGENT_ORIGINAL] = redactor.repeated(userAgent);
        span = tracer.startSpan(method, { kind: SpanKind.SERVER, attributes }, parent);
      }
    }

    const state: RequestState & { [kExchange]?: HttpExchange } = createRequestState(requestId);
    const ctx = createRequestContext(parent, joined ? undefined : span, state);

    let traceResponse: string | undefined;
    const spanContext = span?.spanContext();
    // Span contexts come from a tracer: their ids are generated, taken from a validated parent,
    // or the invalid constants. Comparing with those is enough (the API's check walks every digit).
    if (spanContext && spanContext.traceId !== INVALID_TRACEID && spanContext.spanId !== INVALID_SPANID) {
      const flags = spanContext.traceFlags & 1 ? '01' : '00';
      traceResponse = `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`;
    }

    metrics.requestStarted(method);
    const exchange = new ServerExchange(
      ctx,
      requestId,
      requestIdHeader,
      traceResponse,
      true,
      span,
      joined,
      method,
      path,
      headerValue(request.headers['user-agent']),
      performance.now(),
      inFlight.start(),
    );
    state[kExchange] = exchange;
    return exchange;
  }

  function exchangeOf(ctx: Context = context.active()): HttpExchange | undefined {
    return (getRequestState(ctx) as { [kExchange]?: HttpExchange } | undefined)?.[kExchange];
  }

  function recordError(exchange: HttpExchange, error: unknown): void {
    const state = exchange as ServerExchange;
    if (state.recorded && !state.ended) state.error = error;
  }

  function finish(exchange: ServerExchange, outcome: HttpRequestOutcome): void {
    const durationSeconds = (performance.now() - exchange.startedAt) / 1000;
    const route = outcome.route;
    const error = outcome.error ?? exchange.error;
    const statusCode = outcome.statusCode;
    const aborted = outcome.aborted === true;

    const span = exchange.span;
    if (span) {
      if (route !== undefined) {
        span.updateName(spanNameFor(exchange.method, route));
        span.setAttribute(ATTR_HTTP_ROUTE, route);
      }
      if (!aborted) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, statusCode);
      if (error !== undefined) {
        span.recordException(error instanceof Error ? exportedException(error) : String(error));
      }
      if (aborted && error !== undefined) {
        // The response broke off because the server failed (an error after the headers went out:
        // Express destroys the socket), not because the client left.
        span.setAttribute(ATTR_ERROR_TYPE, errorType(error));
        span.setStatus({ code: SpanStatusCode.ERROR });
      } else if (aborted) {
        span.setAttribute(ATTR_ERROR_TYPE, ABORTED);
      } else if (statusCode >= 500) {
        span.setAttribute(ATTR_ERROR_TYPE, error === undefined ? String(statusCode) : errorType(error));
        span.setStatus({ code: SpanStatusCode.ERROR });
      } else if (error !== undefined && !(statusCode >= 400 && statusCode < 500)) {
        span.setAttribute(ATTR_ERROR_TYPE, errorType(error));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      if (!exchange.joined) span.end();
    }

    metrics.requestEnded(
      exchange.method,
      route ?? UNMATCHED_ROUTE,
      aborted ? 0 : statusCode,
      durationSeconds,
    );

    if (accessLog) {
      writeAccessLog(
        logger,
        {
          method: exchange.method,
          route: route ?? UNMATCHED_ROUTE,
          path: exchange.path,
          status: aborted ? undefined : statusCode,
          duration_ms: durationSeconds * 1000,
          bytes: outcome.responseSize,
          user_agent: exchange.userAgent,
          aborted,
          error,
        },
        exchange.context,
      );
    }
  }

  function end(exchange: HttpExchange, outcome: HttpRequestOutcome): void {
    const state = exchange as ServerExchange;
    if (state.ended) return;
    state.ended = true;
    if (!state.recorded) return;
    try {
      finish(state, outcome);
    } catch (error) {
      sink.report('http_end', error);
    } finally {
      state.finishInFlight();
    }
  }

  function endOnResponse(
    exchange: HttpExchange,
    response: ServerResponse,
    route: () => string | undefined,
  ): void {
    if (!exchange.recorded) return;
    // 'close' follows 'finish' on every response, and comes alone when the client went away: one
    // listener covers both (each listener costs measurably per request).
    response.on('close', () => {
      let template: string | undefined;
      try {
        template = route();
      } catch (error) {
        sink.report('http_route', error);
      }
      const length = response.getHeader('content-length');
      end(exchange, {
        statusCode: response.statusCode,
        route: template,
        responseSize: length === undefined ? undefined : Number(length),
        aborted: !response.writableFinished,
      });
    });
  }

  return { begin, exchangeOf, recordError, end, endOnResponse };
}

/**
 * Whether a recording span is a request's server span. The SDK's spans say their kind; a span of
 * another implementation that does not is taken to be one, as before kinds were read.
 */
function isServerSpan(span: Span): boolean {
  const kind = (span as Span & { kind?: unknown }).kind;
  return kind === undefined || kind === SpanKind.SERVER;
}
