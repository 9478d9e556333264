/**
 * The parts of Express 4 and Express 5 (router 2.x) internals that route templates are read
 * from, typed structurally: both majors are read without importing either at runtime.
 */

export type PathElement = string | RegExp;
/** What `app.use(path)`, `router.use(path)` and `router.route(path)` accept. */
export type RoutePath = PathElement | ReadonlyArray<RoutePath>;

/** A `Route` object (`req.route` once a route matched): the same object in both majors. */
export interface ExpressRoute {
  path: RoutePath;
}

/** Express 5 (router >= 2.3) match result of one path alternative. */
export type RouterMatcher = (path: string) => { path: string } | false;

export interface ExpressLayer {
  handle: unknown;
  route?: ExpressRoute | undefined;
  /** Express 5, router >= 2.3: the path as registered, nested arrays flattened. */
  rawPath?: RoutePath;
  /** Express 5: one matcher per path alternative, in `rawPath` order. */
  matchers?: RouterMatcher[];
  /** Express 4: the compiled path (the string it came from is not kept). */
  regexp?: RegExp & { fast_slash?: boolean };
  keys?: Array<{ name: string | number; optional?: boolean }>;
}

/** Express's `Layer` constructor, reached through `layer.constructor` (never imported). */
export type LayerConstructor = new (
  path: RoutePath,
  options: { sensitive?: boolean; strict?: boolean; end?: boolean },
  fn: () => void,
) => ExpressLayer;

export interface ExpressRouter {
  stack: ExpressLayer[];
  caseSensitive?: boolean;
  strict?: boolean;
}

/** An Express application, as far as mounting goes. */
export interface ExpressApp {
  /** Express 4 (after the first `use` or route). */
  _router?: ExpressRouter;
  /** Express 5 (a lazy getter; Express 4 throws on access). */
  router?: ExpressRouter;
  mountpath?: RoutePath;
  parent?: ExpressApp;
}
