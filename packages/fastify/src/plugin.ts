import { context } from '@opentelemetry/api';
import type { EndpointName, HttpExchange, Sextant } from '@sextant/core';
import type {
  FastifyInstance,
  FastifyPluginCallback,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
  RouteHandlerMethod,
} from 'fastify';
import fp from 'fastify-plugin';
import { beginExchange } from './exchange.ts';
import type { SextantRequest } from './internal-types.ts';
import { assertSextant, describe, ERROR_KIND, optionError, PACKAGE_NAME } from './options.ts';
import { writePendingIncomingLog } from './pending-log.ts';
import { kExchange, kPendingIncomingLog, kRoute } from './symbols.ts';
import type { SextantFastifyOptions } from './types.ts';

const ENDPOINT_METHODS = ['GET', 'HEAD'];
const DEFAULT_OPTIONS = Object.freeze({ endpoints: true });
/** The plugin's options, and those Fastify's `register` itself accepts for any plugin. */
const KNOWN_OPTIONS = ['sextant', 'endpoints', 'logLevel', 'logSerializers'];

function resolveOptions(options: SextantFastifyOptions | undefined): Required<SextantFastifyOptions> {
  if (options !== undefined && (typeof options !== 'object' || options === null || Array.isArray(options))) {
    throw optionError(`options must be an object { sextant, endpoints? }, got ${describe(options)}`);
  }
  const given: Partial<SextantFastifyOptions> & { prefix?: unknown } = options ?? {};
  assertSextant(given.sextant, 'option');
  for (const key of Object.keys(given)) {
    if (key === 'prefix') {
      throw optionError(
        `prefix ${JSON.stringify(given.prefix)} does not apply to this plugin (it instruments the whole app); to move the endpoints, use createSextant({ endpoints: { prefix } })`,
      );
    }
    if (!KNOWN_OPTIONS.includes(key)) {
      throw optionError(
        `unknown option ${JSON.stringify(key)}; expected one of: ${KNOWN_OPTIONS.join(', ')}`,
      );
    }
  }
  const { sextant, endpoints } = given;
  if (endpoints !== undefined && typeof endpoints !== 'boolean') {
    throw optionError(`endpoints must be a boolean, got ${describe(endpoints)}`);
  }
  return { sextant, endpoints: endpoints ?? DEFAULT_OPTIONS.endpoints };
}

function contentLength(reply: FastifyReply): number | undefined {
  const length = reply.getHeader('content-length');
  if (length === undefined) return undefined;
  const bytes = Number(length);
  return Number.isFinite(bytes) ? bytes : undefined;
}

function continueInExchange(
  request: SextantRequest,
  reply: FastifyReply,
  done: HookHandlerDoneFunction,
): void {
  writePendingIncomingLog(request, reply);
  done();
}

function sextantFastifyPlugin(
  fastify: FastifyInstance,
  rawOptions: SextantFastifyOptions,
  pluginDone: (error?: Error) => void,
): void {
  let options: Required<SextantFastifyOptions>;
  try {
    options = resolveOptions(rawOptions);
    // fastify-plugin lifts the plugin into the context it is registered in, prefix included.
    if (fastify.prefix !== '') {
      throw optionError(
        `registered inside a context with prefix ${JSON.stringify(fastify.prefix)}, where its endpoints would move under the prefix and be counted as traffic, and requests outside the context would not be seen; register it at the root, before your routes, and to move the endpoints use createSextant({ endpoints: { prefix } })`,
      );
    }
  } catch (error) {
    pluginDone(error as Error);
    return;
  }
  const { sextant, endpoints } = options;
  const { http, errors } = sextant;

  fastify.decorateRequest(kExchange, null);
  fastify.decorateRequest(kRoute, null);
  fastify.decorateRequest(kPendingIncomingLog, null);

  // Callback style on purpose: `done` is called inside the exchange's context, so Fastify runs
  // the rest of the lifecycle (hooks, handler, the promises they create) inside it. Body parsing
  // reads socket events, outside it, but Fastify resumes in the context its parser started in.
  fastify.addHook('onRequest', function sextantOnRequest(request, reply, done) {
    const state = request as SextantRequest;
    let exchange: HttpExchange | null = null;
    try {
      // routeOptions is built on each read: read it once.
      const { url, config } = request.routeOptions;
      if (config?.sextant !== false) {
        exchange = beginExchange(http, request, reply);
        state[kRoute] = url ?? null;
      }
    } catch (error) {
      errors.report(ERROR_KIND, error);
    }
    if (exchange === null) {
      // Opted out (or begin failed): Fastify goes on as if Sextant were not there.
      continueInExchange(state, reply, done);
      return;
    }
    if (!exchange.recorded) {
      // Sextant's endpoints and ignored paths: no context to enter (the log controller drops their line).
      continueInExchange(state, reply, done);
      return;
    }
    context.with(exchange.context, continueInExchange, undefined, state, reply, done);
  });

  fastify.addHook('onError', function sextantOnError(request, _reply, error, done) {
    const exchange = (request as SextantRequest)[kExchange];
    if (exchange != null) {
      try {
        http.recordError(exchange, error);
      } catch (failure) {
        errors.report(ERROR_KIND, failure);
      }
    }
    done();
  });

  fastify.addHook('onResponse', function sextantOnResponse(request, reply, done) {
    const state = request as SextantRequest;
    const exchange = state[kExchange];
    if (exchange != null) {
      try {
        http.end(exchange, {
          statusCode: reply.statusCode,
          route: state[kRoute] ?? undefined,
          responseSize: contentLength(reply),
        });
      } catch (error) {
        errors.report(ERROR_KIND, error);
      }
    }
    done();
  });

  fastify.addHook('onRequestAbort', function sextantOnRequestAbort(request, done) {
    const state = request as SextantRequest;
    const exchange = state[kExchange];
    if (exchange != null) {
      try {
        // No response was sent: the status code is not recorded for an aborted request.
        http.end(exchange, { statusCode: 0, route: state[kRoute] ?? undefined, aborted: true });
      } catch (error) {
        errors.report(ERROR_KIND, error);
      }
    }
    done();
  });

  if (endpoints) {
    for (const [name, path] of Object.entries(sextant.endpoints.paths) as Array<[EndpointName, string]>) {
      fastify.route({ method: ENDPOINT_METHODS, url: path, handler: endpointHandler(sextant, name, path) });
    }
  }

  pluginDone();
}

function endpointHandler(sextant: Sextant, name: EndpointName, path: string): RouteHandlerMethod {
  return async function serveSextantEndpoint(request: FastifyRequest, reply: FastifyReply) {
    const response = await sextant.endpoints.handle(name, {
      method: request.method,
      path,
      headers: request.headers,
    });
    reply.code(response.statusCode).headers(response.headers);
    return response.body;
  };
}

/**
 * Instruments the whole app (it is wrapped in fastify-plugin, so encapsulation does not hide
 * it): one server span, request metrics and an access log record per request, the request
 * handled inside its trace context, and Sextant's endpoints served as routes. Register it
 * before your routes and plugins.
 */
export const sextantFastify: FastifyPluginCallback<SextantFastifyOptions> = fp(sextantFastifyPlugin, {
  fastify: '5.x',
  name: PACKAGE_NAME,
});
