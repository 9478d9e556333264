import { createHash, timingSafeEqual } from 'node:crypto';
import type { ResolvedConfig } from './config.ts';
import type { CheckReport, Health, HealthReport } from './health.ts';
import type { InternalErrorSink } from './internal-errors.ts';

export interface EndpointRequest {
  method: string;
  path: string;
  /** Lowercase keys, as Node gives them. */
  headers: Record<string, string | string[] | undefined>;
}

export interface EndpointResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

export type EndpointName = 'metrics' | 'liveness' | 'readiness' | 'detailed';

/** Sextant's own HTTP endpoints as plain functions, for every HTTP adapter to mount. */
export interface Endpoints {
  /** Each endpoint's path, under `endpoints.prefix`. */
  readonly paths: Readonly<Record<EndpointName, string>>;
  /** The endpoint at `path` (query string ignored; a trailing slash is accepted), if any. */
  match(path: string): EndpointName | undefined;
  /** Answers one request. Never rejects: an internal failure answers 500 and is reported. */
  handle(name: EndpointName, request: EndpointRequest): Promise<EndpointResponse>;
  /** True for Sextant's own paths, which stay out of request metrics, spans and access logs. */
  isEndpointPath(path: string): boolean;
}

/** What `/metrics` serves; `accept` lets it choose OpenMetrics when the scraper asks for it. */
export interface MetricsSource {
  render(accept?: string): Promise<{ contentType: string; body: string }>;
}

/** The `/health/ready` body. */
interface ReadinessBody {
  status: HealthReport['status'];
  checks?: Pick<CheckReport, 'name' | 'status'>[];
}

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
const ALLOWED_METHODS = 'GET, HEAD';
const BEARER_PREFIX = 'bearer ';
const UNAUTHORIZED_BODY = '{"error":"unauthorized"}';
const METHOD_NOT_ALLOWED_BODY = '{"error":"method not allowed"}';
const INTERNAL_ERROR_BODY = '{"error":"internal error"}';

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

function jsonResponse(statusCode: number, body: string): EndpointResponse {
  return { statusCode, headers: { 'content-type': JSON_CONTENT_TYPE, 'cache-control': 'no-store' }, body };
}

/**
 * What `/health/ready` serves: the overall status and each critical check's name and status. A
 * reason is a dependency's raw error message (user names, hosts, ports) and readiness is served
 * to anyone who can reach the port, token or not; reasons and details stay in `/health/detailed`.
 */
function publicReadiness(report: HealthReport): ReadinessBody {
  if (report.checks === undefined) return { status: report.status };
  return {
    status: report.status,
    checks: report.checks.map(({ name, status }) => ({ name, status })),
  };
}

/** Paths and token are fixed here, once; `match` is a map lookup, cheap enough for every request. */
export function createEndpoints(
  config: ResolvedConfig,
  sink: InternalErrorSink,
  sources: { metrics: MetricsSource; health: Health },
): Endpoints {
  const { prefix, token } = config.endpoints;
  const paths: Readonly<Record<EndpointName, string>> = Object.freeze({
    metrics: `${prefix}/metrics`,
    liveness: `${prefix}/health`,
    readiness: `${prefix}/health/ready`,
    detailed: `${prefix}/health/detailed`,
  });
  const byPath = new Map<string, EndpointName>();
  for (const [name, path] of Object.entries(paths) as [EndpointName, string][]) {
    byPath.set(path, name);
    // Probes are often written with a trailing slash; Express and Fastify route both alike by default.
    byPath.set(`${path}/`, name);
  }

  // Both sides are hashed so that the comparison takes the same time whatever the lengths.
  const expectedTokenDigest = token === undefined ? undefined : sha256(token);

  function isAuthorized(name: EndpointName, authorization: string | string[] | undefined): boolean {
    if (expectedTokenDigest === undefined) return true;
    // Kubernetes probes send no header, and a liveness 401 restarts the pod; these two bodies
    // carry only statuses and check names, so they have nothing to guard.
    if (name === 'liveness' || name === 'readiness') return true;
    if (typeof authorization !== 'string' || authorization.length <= BEARER_PREFIX.length) return false;
    // The scheme is case-insensitive (RFC 9110); the token is not.
    if (authorization.slice(0, BEARER_PREFIX.length).toLowerCase() !== BEARER_PREFIX) return false;
    return timingSafeEqual(sha256(authorization.slice(BEARER_PREFIX.length).trim()), expectedTokenDigest);
  }

  function serialise(report: HealthReport): string {
    try {
      return JSON.stringify(report);
    } catch (error) {
      // A check's details that JSON cannot represent (a BigInt, a cycle) must not cost the whole report.
      sink.report('endpoints', error);
      const checks = report.checks?.map(({ details: _dropped, ...rest }) => rest);
      return JSON.stringify({ ...report, checks });
    }
  }

  async function respond(name: EndpointName, request: EndpointRequest): Promise<EndpointResponse> {
    if (!isAuthorized(name, request.headers.authorization)) {
      const response = jsonResponse(401, UNAUTHORIZED_BODY);
      response.headers['www-authenticate'] = 'Bearer';
      return response;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      const response = jsonResponse(405, METHOD_NOT_ALLOWED_BODY);
      response.headers.allow = ALLOWED_METHODS;
      return response;
    }
    switch (name) {
      case 'metrics': {
        const { contentType, body } = await sources.metrics.render(headerText(request.headers.accept));
        return {
          statusCode: 200,
          headers: { 'content-type': contentType, 'cache-control': 'no-store' },
          body,
        };
      }
      case 'liveness': {
        const { statusCode, body } = sources.health.liveness();
        return jsonResponse(statusCode, serialise(body));
      }
      case 'readiness': {
        const { statusCode, body } = await sources.health.readiness();
        // Names and statuses only: plain strings, which JSON always represents.
        return jsonResponse(statusCode, JSON.stringify(publicReadiness(body)));
      }
      case 'detailed': {
        const { statusCode, body } = await sources.health.detailed();
        return jsonResponse(statusCode, serialise(body));
      }
      default:
        throw new TypeError(`unknown endpoint ${JSON.stringify(name)}`);
    }
  }

  function match(path: string): EndpointName | undefined {
    const query = path.indexOf('?');
    return byPath.get(query === -1 ? path : path.slice(0, query));
  }

  return {
    paths,
    match,
    async handle(name, request) {
      let response: EndpointResponse;
      try {
        response = await respond(name, request);
      } catch (error) {
        sink.report('endpoints', error);
        response = jsonResponse(500, INTERNAL_ERROR_BODY);
      }
      // HEAD answers exactly what GET would, without the body.
      if (request?.method === 'HEAD') response.body = '';
      return response;
    },
    isEndpointPath: (path) => match(path) !== undefined,
  };
}
