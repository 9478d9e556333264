import type { TLSSocket } from 'node:tls';
import { context } from '@opentelemetry/api';
import type { HttpExchange, Sextant } from '@sextant/core';
import type { ErrorRequestHandler, Request, RequestHandler } from 'express';
import type { ExpressApp } from './internal-types.ts';
import { assertSextant, resolveOptions, WARNING_CODES } from './options.ts';
import { createRouteTemplates, type RouteTemplates } from './route-templates.ts';
import type { SextantExpressOptions } from './types.ts';

const kExchange = Symbol('sextant.express.exchange');
const kLoggedError = Symbol('sextant.express.loggedError');

interface InstrumentedRequest extends Request {
  [kExchange]?: HttpExchange;
  [kLoggedError]?: unknown;
}

/**
 * Instruments every request that reaches it: a server span named `{method} {route}` with the
 * full route template, the request metrics, the access log record, a correlation id echoed on
 * the response, and the request's context active in every handler after it. Register it first.
 */
export function createSextantMiddleware(sextant: Sextant, options?: SextantExpressOptions): RequestHandler {
  assertSextant(sextant, 'createSextantMiddleware');
  const { ignore } = resolveOptions(options);
  const { http, errors, logger } = sextant;

  const templatesByApp = new WeakMap<object, RouteTemplates>();
  let lastApp: unknown;
  let lastTemplates: RouteTemplates | undefined;

  const warnUnplaced = (route: string) => {
    logger.warn(
      { code: WARNING_CODES.ROUTE_UNPLACED, http_route: route },
      `@sextant/express: route ${route} is not reachable from the application's router (mounted through ` +
        'a wrapper function, a sub-application that passed an error on, or Express 5 with router < 2.3), ' +
        'so it is recorded without its mount path',
    );
  };

  function templatesFor(app: unknown): RouteTemplates {
    if (app === lastApp && lastTemplates !== undefined) return lastTemplates;
    let templates = templatesByApp.get(app as object);
    if (templates === undefined) {
      templates = createRouteTemplates(app as ExpressApp, warnUnplaced);
      templatesByApp.set(app as object, templates);
    }
    lastApp = app;
    lastTemplates = templates;
    return templates;
  }

  function routeOf(templates: RouteTemplates, req: Request): string | undefined {
    try {
      return templates.routeOf(req);
    } catch (error) {
      errors.report('express_route', error);
      return undefined;
    }
  }

  function isIgnored(req: Request): boolean {
    try {
      return ignore!(req) === true;
    } catch (error) {
      errors.report('express_ignore', error);
      return false;
    }
  }

  return function sextantMiddleware(req, res, next) {
    // Already begun by an enclosing app's middleware (a sub-application that also runs on its
    // own): a second exchange would count the request twice and write a second access record.
    if ((req as InstrumentedRequest)[kExchange] !== undefined) {
      next();
      return;
    }
    if (ignore !== undefined && isIgnored(req)) {
      next();
      return;
    }
    let exchange: HttpExchange;
    try {
      // As the application's own handlers see them: req.protocol and req.ip honour `trust proxy`.
      // Without it (the default) both are the socket's, which is cheaper to read than to have
      // Express parse the forwarding headers for a result it then discards.
      const proxied = req.app.get('trust proxy') !== false;
      exchange = http.begin({
        method: req.method,
        url: req.originalUrl ?? req.url,
        headers: req.headers,
        scheme: (proxied ? req.protocol === 'https' : (req.socket as TLSSocket).encrypted === true)
          ? 'https'
          : 'http',
        remoteAddress: (proxied ? req.ip : undefined) ?? req.socket.remoteAddress,
        httpVersion: req.httpVersion,
      });
      (req as InstrumentedRequest)[kExchange] = exchange;
      // Tied to the response first: whatever happens next, the exchange ends with it.
      if (exchange.recorded) {
        const templates = templatesFor(req.app);
        http.endOnResponse(exchange, res, () => routeOf(templates, req));
      }
      const headers = exchange.responseHeaders;
      for (let i = 0; i < headers.length; i++) res.setHeader(headers[i]![0], headers[i]![1]);
    } catch (error) {
      errors.report('express_middleware', error);
      next();
      return;
    }
    context.with(exchange.context, next);
  };
}

function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { status, statusCode } = error as { status?: unknown; statusCode?: unknown };
  const value = typeof status === 'number' ? status : statusCode;
  return typeof value === 'number' ? value : undefined;
}

/**
 * Records an error passed to Express (thrown, rejected in Express 5, or given to `next(err)`) on
 * the request's span, logs it once with the request's ids, then hands it on unchanged: the
 * application's own error handlers, or Express's default one, answer as before. Register it
 * after the routes and before the application's error handlers.
 */
export function createErrorHandler(sextant: Sextant): ErrorRequestHandler {
  assertSextant(sextant, 'createErrorHandler');
  const { http, errors, logger } = sextant;

  function logError(error: unknown): void {
    const status = statusOf(error);
    // An error that carries a 4xx status is the client's mistake (a malformed body), not a failure.
    if (status !== undefined && status >= 400 && status < 500)
      logger.warn({ err: error }, 'request rejected');
    else logger.error({ err: error }, 'request failed');
  }

  return function sextantErrorHandler(error, req, _res, next) {
    const request = req as InstrumentedRequest;
    const exchange = request[kExchange];
    if (exchange !== undefined && request[kLoggedError] !== error) {
      request[kLoggedError] = error;
      try {
        http.recordError(exchange, error);
        context.with(exchange.context, logError, undefined, error);
      } catch (failure) {
        errors.report('express_error_handler', failure);
      }
    }
    next(error);
  };
}
