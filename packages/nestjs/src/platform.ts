import type { HttpAdapterHost } from '@nestjs/core';
import { ERROR_CODES, type Sextant, SextantConfigError } from '@sextant/core';
import { NO_TRACE_METADATA, PACKAGE_NAME } from './constants.ts';

/** What the module did to the platform: `none` for an application without HTTP (a microservice). */
export type InstrumentedPlatform = 'express' | 'fastify' | 'none';

interface ExpressRouteLayer {
  route?: { methods?: Record<string, boolean>; stack?: Array<{ handle?: unknown }> };
  matchers?: Array<(path: string) => unknown>;
}

interface ExpressLikeRequest {
  method: string;
  originalUrl?: string;
  url: string;
  app?: { router?: { stack?: ExpressRouteLayer[] } };
}

interface OptedOutRoute {
  methods: Record<string, boolean>;
  matchers: Array<(path: string) => unknown>;
}

function missingAdapter(platform: string, name: string, error: unknown): never {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
    throw new SextantConfigError(
      ERROR_CODES.INVALID_OPTION,
      `the ${platform} platform is instrumented through ${name}, which is not installed: npm install ${name}`,
      PACKAGE_NAME,
    );
  }
  throw error;
}

function hasNoTrace(handle: unknown): boolean {
  const reflect = Reflect as unknown as { getMetadata?: (key: unknown, target: object) => unknown };
  return typeof handle === 'function' && reflect.getMetadata?.(NO_TRACE_METADATA, handle) === true;
}

/**
 * Routes marked `@NoTrace()`, read from Express's router once routes exist (the first request):
 * Nest copies a handler's metadata onto the function it mounts.
 */
function findOptedOutRoutes(request: ExpressLikeRequest): OptedOutRoute[] {
  const routes: OptedOutRoute[] = [];
  for (const layer of request.app?.router?.stack ?? []) {
    const route = layer.route;
    if (route === undefined || layer.matchers === undefined) continue;
    if (route.stack?.some((entry) => hasNoTrace(entry.handle))) {
      routes.push({ methods: route.methods ?? {}, matchers: layer.matchers });
    }
  }
  return routes;
}

function pathOf(request: ExpressLikeRequest): string {
  const url = request.originalUrl ?? request.url;
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

async function instrumentExpress(
  app: { use: (handler: unknown) => void },
  sextant: Sextant,
  endpoints: boolean,
) {
  let express: typeof import('@sextant/express');
  try {
    express = await import('@sextant/express');
  } catch (error) {
    missingAdapter('Express', '@sextant/express', error);
  }
  let optedOut: OptedOutRoute[] | undefined;
  const ignore = (request: unknown): boolean => {
    const req = request as ExpressLikeRequest;
    optedOut ??= findOptedOutRoutes(req);
    if (optedOut.length === 0) return false;
    const method = req.method === 'HEAD' ? 'get' : req.method.toLowerCase();
    const path = pathOf(req);
    return optedOut.some(
      (route) =>
        (route.methods[method] === true || route.methods._all === true) &&
        route.matchers.some((match) => match(path) !== false),
    );
  };
  // Nest mounts its body parsers and routes during `app.init()`, after this: the span covers them.
  app.use(express.createSextantMiddleware(sextant, { ignore }));
  if (endpoints) app.use(express.createEndpointsHandler(sextant));
}

async function instrumentFastify(
  fastify: { register: (plugin: unknown, options: object) => unknown },
  sextant: Sextant,
  endpoints: boolean,
) {
  let plugin: typeof import('@sextant/fastify');
  try {
    plugin = await import('@sextant/fastify');
  } catch (error) {
    missingAdapter('Fastify', '@sextant/fastify', error);
  }
  // Fastify loads plugins in registration order: the hooks reach every route Nest adds later.
  void fastify.register(plugin.sextantFastify, { sextant, endpoints });
}

/**
 * Instruments the HTTP platform under Nest, before Nest mounts its body parsers, middleware and
 * routes (module providers are created before `app.init()`), so that the server span covers the
 * whole Nest pipeline: middleware, guards, interceptors, pipes, the handler and exception filters.
 */
export async function instrumentPlatform(
  adapterHost: HttpAdapterHost | undefined,
  sextant: Sextant,
  endpoints: boolean,
): Promise<InstrumentedPlatform> {
  const adapter = adapterHost?.httpAdapter;
  if (adapter === undefined || adapter === null) return 'none';
  const type = adapter.getType();
  if (type === 'express') {
    await instrumentExpress(adapter.getInstance(), sextant, endpoints);
    return 'express';
  }
  if (type === 'fastify') {
    await instrumentFastify(adapter.getInstance(), sextant, endpoints);
    return 'fastify';
  }
  throw new SextantConfigError(
    ERROR_CODES.INVALID_OPTION,
    `unsupported HTTP platform ${JSON.stringify(type)}: expected @nestjs/platform-express or @nestjs/platform-fastify`,
    PACKAGE_NAME,
  );
}
