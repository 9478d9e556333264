import type { ApplicationConfig, HttpAdapterHost } from '@nestjs/core';
import { ERROR_CODES, type Sextant, SextantConfigError } from '@sextant/core';
import { NO_TRACE_METADATA, PACKAGE_NAME } from './constants.ts';

/** What the module did to the platform: `none` for an application without HTTP (a microservice). */
export type InstrumentedPlatform = 'express' | 'fastify' | 'none';

interface ExpressRoute {
  path?: unknown;
  methods?: Record<string, boolean>;
  stack?: Array<{ handle?: unknown }>;
}

interface ExpressLayer {
  route?: ExpressRoute;
  handle?: unknown;
  /** Express 5 (router >= 2.3): the path as registered. */
  rawPath?: unknown;
  /** Express 5 (router >= 2.3): one matcher per path alternative. */
  matchers?: Array<(path: string) => unknown>;
}

interface ExpressLikeRequest {
  method: string;
  originalUrl?: string;
  url: string;
  route?: unknown;
  app?: { router?: { stack?: ExpressLayer[] } };
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

function rootLayers(request: ExpressLikeRequest): ExpressLayer[] {
  return request.app?.router?.stack ?? [];
}

/**
 * Route layers of handlers marked `@NoTrace()`, read from Express's router once routes exist
 * (the first request): Nest copies a handler's metadata onto the function it mounts.
 */
function findOptedOutLayers(request: ExpressLikeRequest): ExpressLayer[] {
  return rootLayers(request).filter(
    (layer) => layer.route?.stack?.some((entry) => hasNoTrace(entry.handle)) === true,
  );
}

/** Express's rule (`Route#_handlesMethod`): `all()` handles every method, a GET route a HEAD. */
function handlesMethod(route: ExpressRoute, method: string): boolean {
  const methods = route.methods;
  if (methods === undefined) return false;
  if (methods._all === true) return true;
  if (method === 'head' && methods.head !== true) return methods.get === true;
  return methods[method] === true;
}

/**
 * Whether Express would dispatch the request to this route layer if it came to it: its route
 * handles the method and its path matches. `undefined` when the router does not tell (router <
 * 2.3 keeps no matchers; a path Express cannot decode fails its own match).
 */
function reaches(layer: ExpressLayer, method: string, path: string): boolean | undefined {
  if (layer.route === undefined || !handlesMethod(layer.route, method)) return false;
  const matchers = layer.matchers;
  if (matchers === undefined) return undefined;
  try {
    for (const match of matchers) if (match(path) !== false) return true;
  } catch {
    return undefined;
  }
  return false;
}

/**
 * Whether the request goes to a `@NoTrace()` handler. Nest mounts its routes on the
 * application's router, in order, and Express calls the first route that handles the method and
 * matches the path: `GET /users/me` goes to `@Get('me')` when it comes before a `@NoTrace()`
 * `@Get(':id')`. The walk is left out for a request that no opted-out route would take.
 */
function reachesOptedOut(request: ExpressLikeRequest, optedOut: readonly ExpressLayer[]): boolean {
  const method = request.method.toLowerCase();
  const path = pathOf(request);
  if (!optedOut.some((layer) => reaches(layer, method, path) === true)) return false;
  for (const layer of rootLayers(request)) {
    const reached = reaches(layer, method, path);
    if (reached === undefined) return false;
    if (reached) return optedOut.includes(layer);
  }
  return false;
}

/** `@nestjs/platform-express`'s form of the global prefix: `api/` is mounted at `/api`. */
function mountedPrefix(prefix: string): string {
  if (prefix === '') return '';
  const leading = prefix.startsWith('/') || prefix.startsWith('{/') ? prefix : `/${prefix}`;
  return leading.endsWith('/') ? leading.slice(0, -1) : leading;
}

function isRouter(handle: unknown): handle is { stack: ExpressLayer[] } {
  return typeof handle === 'function' && Array.isArray((handle as { stack?: unknown }).stack);
}

/**
 * Nest 12 mounts its "not found" handler under a global prefix as a route,
 * `Router().all('*path', handler)` at the prefix, plus `app.all(path, handler)` for each
 * excluded path (a method miss there): a request answered by it has a `req.route` like any other.
 * Found once routes exist (the first request): the router mounted at the prefix that holds that
 * one route, then the routes of the application's router that call nothing but the same handler.
 * Nest 11, and Nest 12 without a prefix, use a plain middleware, which leaves `req.route` unset.
 */
function findNotFoundRoutes(request: ExpressLikeRequest, globalPrefix: string): Set<unknown> {
  const routes = new Set<unknown>();
  const prefix = mountedPrefix(globalPrefix);
  if (prefix === '') return routes;
  const handlers = new Set<unknown>();
  const layers = rootLayers(request);
  for (const layer of layers) {
    if (layer.route !== undefined || layer.rawPath !== prefix || !isRouter(layer.handle)) continue;
    const stack = layer.handle.stack;
    const route = stack.length === 1 ? stack[0]!.route : undefined;
    if (route?.path !== '*path' || route.methods?._all !== true || route.stack?.length !== 1) continue;
    routes.add(route);
    handlers.add(route.stack[0]!.handle);
  }
  if (handlers.size === 0) return routes;
  // `app.all(path, handler)` gives each method its own entry, all of them that handler.
  for (const layer of layers) {
    const stack = layer.route?.stack;
    if (stack !== undefined && stack.length > 0 && stack.every((entry) => handlers.has(entry.handle)))
      routes.add(layer.route);
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
  globalPrefix: () => string,
) {
  let express: typeof import('@sextant/express');
  try {
    express = await import('@sextant/express');
  } catch (error) {
    missingAdapter('Express', '@sextant/express', error);
  }
  let optedOut: ExpressLayer[] | undefined;
  const ignore = (request: unknown): boolean => {
    const req = request as ExpressLikeRequest;
    optedOut ??= findOptedOutLayers(req);
    return optedOut.length > 0 && reachesOptedOut(req, optedOut);
  };
  const middleware = express.createSextantMiddleware(sextant, { ignore });

  let notFound: Set<unknown> | undefined;
  // Runs before the middleware's own 'close' listener, which reads `req.route` for the template:
  // a request Nest's "not found" route answered is then recorded as matching no route.
  function forgetNotFoundRoute(this: { req?: ExpressLikeRequest }): void {
    const req = this.req;
    if (req !== undefined && notFound!.has(req.route)) req.route = undefined;
  }
  // Nest mounts its body parsers and routes during `app.init()`, after this: the span covers them.
  app.use(function sextantNest(req: ExpressLikeRequest, res: NodeJS.EventEmitter, next: () => void) {
    notFound ??= findNotFoundRoutes(req, globalPrefix());
    if (notFound.size > 0) res.on('close', forgetNotFoundRoute);
    (middleware as unknown as (req: unknown, res: unknown, next: () => void) => void)(req, res, next);
  });
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
 * On Fastify, Nest middleware and the adapter's own request hooks (CORS, security headers) run
 * before the plugin's hook, so they stay outside it.
 */
export async function instrumentPlatform(
  adapterHost: HttpAdapterHost | undefined,
  sextant: Sextant,
  endpoints: boolean,
  config?: ApplicationConfig,
): Promise<InstrumentedPlatform> {
  const adapter = adapterHost?.httpAdapter;
  if (adapter === undefined || adapter === null) return 'none';
  const type = adapter.getType();
  if (type === 'express') {
    // Read when routes exist: `app.setGlobalPrefix()` comes after the module is created.
    await instrumentExpress(adapter.getInstance(), sextant, endpoints, () => config?.getGlobalPrefix() ?? '');
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
