import type {
  ExpressApp,
  ExpressLayer,
  ExpressRoute,
  ExpressRouter,
  LayerConstructor,
  PathElement,
  RoutePath,
} from './internal-types.ts';

/**
 * Full route templates (`/orgs/:org/projects/:project`) for Express 4 and 5.
 *
 * Express tells a handler only its own route (`req.route.path`) and the concrete prefix it was
 * reached through (`req.baseUrl`, `/orgs/acme`): joining the two leaks ids into labels, and the
 * route path alone merges every router that has a `/:id`. The mount templates are in the
 * application's router tree, so the tree is walked once (lazily, on the first response, when the
 * application is set up) into a map from each `Route` object to its full template. Per request
 * that leaves one map lookup on `req.route`. A route reachable along several paths (a router
 * mounted twice, path arrays) keeps every candidate and is resolved by re-matching the request
 * path, a cost paid only by such routes.
 */
export interface RouteTemplates {
  /** The template of the route that handled `req`, or `undefined` when no route matched. */
  routeOf(req: { route?: unknown; originalUrl?: string; url?: string; app?: unknown }): string | undefined;
}

/** Called once per route that could not be placed under its mount path. */
export type UnplacedRouteListener = (fallbackTemplate: string) => void;

interface Step {
  readonly layer: ExpressLayer;
  readonly router: ExpressRouter;
  /** Index of the path alternative this step stands for. */
  readonly alternative: number;
  readonly mount: boolean;
}

interface Candidate {
  readonly template: string;
  /** Layers to re-match, root first; `undefined` entries cannot be re-matched (sub-app mounts). */
  readonly steps: ReadonlyArray<Step | undefined>;
}

type Entry = string | readonly Candidate[];

const MAX_CANDIDATES = 64;
const MAX_DEPTH = 32;
const ROOT_PREFIX: Candidate = Object.freeze({ template: '', steps: Object.freeze([]) });
const noop = () => {};

function flatten(path: RoutePath): PathElement[] {
  return Array.isArray(path)
    ? ((path as RoutePath[]).flat(Number.POSITIVE_INFINITY as 1) as PathElement[])
    : [path as PathElement];
}

/** `/api/` and `/api` mount the same prefix; `/` mounts none. */
export function mountTemplate(element: PathElement): string {
  if (typeof element !== 'string') return String(element);
  let end = element.length;
  while (end > 0 && element.charCodeAt(end - 1) === 47 /* / */) end--;
  return element.slice(0, end);
}

/** A route's own path under its prefix: `router.post('/')` mounted at `/jobs` is `/jobs`. */
export function joinRoute(prefix: string, element: PathElement): string {
  if (typeof element !== 'string') return prefix + String(element);
  if (element === '/' || element === '') return prefix === '' ? '/' : prefix;
  return prefix + element;
}

function routerOf(handle: unknown): ExpressRouter | undefined {
  if (typeof handle !== 'function') return undefined;
  const candidate = handle as unknown as ExpressRouter & ExpressApp & { set?: unknown; handle?: unknown };
  if (Array.isArray(candidate.stack)) return candidate;
  // An application passed to `router.use()` directly (not through `app.use`, which wraps it).
  if (typeof candidate.set === 'function' && typeof candidate.handle === 'function')
    return appRouter(candidate);
  return undefined;
}

export function appRouter(app: ExpressApp): ExpressRouter | undefined {
  // Express 4 keeps its router in `_router` and throws from the `router` getter; Express 5 has only `router`.
  if (app._router !== undefined) return app._router;
  if ('_router' in app) return undefined;
  try {
    const router = app.router;
    return router !== undefined && Array.isArray(router.stack) ? router : undefined;
  } catch {
    return undefined;
  }
}

const EXPRESS4_TOKENS: ReadonlyArray<readonly [string, (key: string) => string]> = [
  ['(?:\\/([^/]+?))?', (key) => `/:${key}?`],
  ['(?:\\/([^/]+?))', (key) => `/:${key}`],
  ['(?:\\.([^/\\.]+?))?', (key) => `.:${key}?`],
  ['(?:\\.([^/\\.]+?))', (key) => `.:${key}`],
  ['(.*)', () => '*'],
];
const EXPRESS4_MOUNT_SUFFIX = '\\/?(?=\\/|$)';
const REGEXP_SYNTAX = /[()[\]{}?+*|^$\\]/;

function reverseExpress4Alternative(
  source: string,
  keys: ExpressLayer['keys'],
  keyIndex: { next: number },
): string | undefined {
  if (!source.startsWith('^') || !source.endsWith(EXPRESS4_MOUNT_SUFFIX)) return undefined;
  const body = source.slice(1, source.length - EXPRESS4_MOUNT_SUFFIX.length);
  let template = '';
  let i = 0;
  outer: while (i < body.length) {
    for (const [token, render] of EXPRESS4_TOKENS) {
      if (body.startsWith(token, i)) {
        const key = keys?.[keyIndex.next++];
        if (key === undefined) return undefined;
        template += render(String(key.name));
        i += token.length;
        continue outer;
      }
    }
    if (body[i] === '\\' && (body[i + 1] === '/' || body[i + 1] === '.')) {
      template += body[i + 1];
      i += 2;
      continue;
    }
    if (REGEXP_SYNTAX.test(body[i]!)) return undefined;
    template += body[i];
    i++;
  }
  return template;
}

/**
 * Express 4 keeps only the compiled regexp of a mount path. Its compiler (path-to-regexp 0.1) is
 * frozen, so the common shapes (`/a/:b`, `/:b?`, `.:ext`, `*`, arrays of them) are read back, and
 * the result is accepted only if Express's own `Layer` compiles it to the very same regexp.
 */
export function reverseExpress4Mount(layer: ExpressLayer, router: ExpressRouter): string[] | undefined {
  const regexp = layer.regexp;
  if (!(regexp instanceof RegExp)) return undefined;
  const keyIndex = { next: 0 };
  const alternatives: string[] = [];
  for (const part of regexp.source.split('|^')) {
    const template = reverseExpress4Alternative(
      alternatives.length === 0 ? part : `^${part}`,
      layer.keys,
      keyIndex,
    );
    if (template === undefined) return undefined;
    alternatives.push(template);
  }
  if (keyIndex.next !== (layer.keys?.length ?? 0)) return undefined;
  try {
    const Layer = layer.constructor as LayerConstructor;
    const path = alternatives.length === 1 ? alternatives[0]! : alternatives;
    const compiled = new Layer(path, { sensitive: router.caseSensitive, strict: false, end: false }, noop)
      .regexp;
    if (compiled?.source === regexp.source && compiled.flags === regexp.flags) return alternatives;
  } catch {
    // Not a path Express would accept: fall through to the regexp itself.
  }
  return undefined;
}

/** The templates one mount layer adds, one per path alternative; `undefined` when unreadable. */
function mountTemplates(layer: ExpressLayer, router: ExpressRouter): string[] | undefined {
  if (layer.rawPath !== undefined) return flatten(layer.rawPath).map(mountTemplate);
  const regexp = layer.regexp;
  if (regexp instanceof RegExp) {
    if (regexp.fast_slash) return [''];
    const alternatives = reverseExpress4Mount(layer, router);
    // A regexp is its literal, as Express 5 gives it: trimming "trailing slashes" would cut its closing one.
    return alternatives === undefined ? [String(regexp)] : alternatives.map(mountTemplate);
  }
  // Express 5 with router < 2.3 keeps the mount path only inside closures.
  return undefined;
}

function routeElements(layer: ExpressLayer, route: ExpressRoute): PathElement[] {
  return flatten(layer.rawPath ?? route.path);
}

/** The template of a route that is not reachable from the application's router tree. */
export function ownTemplate(route: ExpressRoute): string {
  return joinRoute('', flatten(route.path)[0] ?? '/');
}

function prefixesOfApp(app: ExpressApp, depth = 0): Candidate[] {
  if (app.parent === undefined || app.mountpath === undefined || depth > MAX_DEPTH) return [ROOT_PREFIX];
  const parents = prefixesOfApp(app.parent, depth + 1);
  const prefixes: Candidate[] = [];
  for (const parent of parents) {
    for (const element of flatten(app.mountpath)) {
      if (prefixes.length < MAX_CANDIDATES) {
        prefixes.push({
          template: parent.template + mountTemplate(element),
          steps: [...parent.steps, undefined],
        });
      }
    }
  }
  return prefixes;
}

function collect(
  router: ExpressRouter,
  prefixes: readonly Candidate[],
  found: Map<ExpressRoute, Candidate[]>,
  visiting: Set<ExpressRouter>,
): void {
  if (visiting.has(router) || visiting.size > MAX_DEPTH) return;
  visiting.add(router);
  for (const layer of router.stack) {
    const route = layer.route;
    if (route !== undefined) {
      let candidates = found.get(route);
      if (candidates === undefined) {
        candidates = [];
        found.set(route, candidates);
      }
      const elements = routeElements(layer, route);
      for (const prefix of prefixes) {
        for (let alternative = 0; alternative < elements.length; alternative++) {
          if (candidates.length >= MAX_CANDIDATES) break;
          candidates.push({
            template: joinRoute(prefix.template, elements[alternative]!),
            steps: [...prefix.steps, { layer, router, alternative, mount: false }],
          });
        }
      }
      continue;
    }
    const child = routerOf(layer.handle);
    if (child === undefined) continue;
    const mounts = mountTemplates(layer, router);
    if (mounts === undefined) continue;
    const childPrefixes: Candidate[] = [];
    for (const prefix of prefixes) {
      for (let alternative = 0; alternative < mounts.length; alternative++) {
        if (childPrefixes.length >= MAX_CANDIDATES) break;
        childPrefixes.push({
          template: prefix.template + mounts[alternative],
          steps: [...prefix.steps, { layer, router, alternative, mount: true }],
        });
      }
    }
    collect(child, childPrefixes, found, visiting);
  }
  visiting.delete(router);
}

function toEntry(candidates: readonly Candidate[]): Entry {
  const first = candidates[0]!.template;
  return candidates.every((candidate) => candidate.template === first) ? first : candidates;
}

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

// Express 4 compiles a path array into one regexp: each alternative is compiled alone, once, to tell them apart.
const express4Alternatives = new WeakMap<ExpressLayer, RegExp[]>();

function express4Alternative(step: Step): RegExp | undefined {
  let compiled = express4Alternatives.get(step.layer);
  if (compiled === undefined) {
    const Layer = step.layer.constructor as LayerConstructor;
    const options = step.mount
      ? { sensitive: step.router.caseSensitive, strict: false, end: false }
      : { sensitive: step.router.caseSensitive, strict: step.router.strict, end: true };
    const elements = step.mount
      ? reverseExpress4Mount(step.layer, step.router)
      : flatten(step.layer.route?.path ?? []);
    // A mount that is a regexp of the application's own is its own matcher.
    compiled =
      elements === undefined
        ? [step.layer.regexp!]
        : elements.map((element) => new Layer(element, options, noop).regexp!);
    express4Alternatives.set(step.layer, compiled);
  }
  return compiled[step.alternative];
}

/** Length of `path` the step's path alternative matches, or -1. */
function matchLength(step: Step, path: string): number {
  const matcher = step.layer.matchers?.[step.alternative];
  if (matcher !== undefined) {
    const match = matcher(path);
    return match === false ? -1 : match.path.length;
  }
  const regexp = express4Alternative(step);
  const match = regexp?.exec(path);
  return match ? match[0].length : -1;
}

function matches(candidate: Candidate, requestPath: string): boolean {
  let path = requestPath;
  for (const step of candidate.steps) {
    // A sub-application's mount cannot be re-matched: trust the rest of the candidate.
    if (step === undefined) return true;
    const length = matchLength(step, path);
    if (length < 0) return false;
    if (!step.mount) return true;
    path = path.slice(length);
    if (path[0] !== '/') path = `/${path}`;
  }
  return true;
}

function resolve(candidates: readonly Candidate[], url: string): string {
  const path = pathOf(url);
  for (const candidate of candidates) {
    try {
      if (matches(candidate, path)) return candidate.template;
    } catch {
      // A malformed escape in the path fails a candidate, as it fails Express's own match.
    }
  }
  return candidates[0]!.template;
}

const MAX_SUB_APPS = 64;

function isApp(value: unknown): value is ExpressApp {
  return typeof value === 'function' && typeof (value as { handle?: unknown }).handle === 'function';
}

export function createRouteTemplates(app: ExpressApp, onUnplaced: UnplacedRouteListener): RouteTemplates {
  let entries: Map<ExpressRoute, Entry> | undefined;
  // `app.use(path, subApp)` hides the sub-application behind a closure; it is seen only as
  // `req.app` of a request that it answered, and walked from then on.
  const subApps = new Set<ExpressApp>();
  const rebuiltFor = new WeakSet<ExpressRoute>();
  const unplaced = new WeakMap<ExpressRoute, string>();

  function build(): Map<ExpressRoute, Entry> {
    const found = new Map<ExpressRoute, Candidate[]>();
    for (const root of [app, ...subApps]) {
      const router = appRouter(root);
      if (router !== undefined) collect(router, prefixesOfApp(root), found, new Set());
    }
    const built = new Map<ExpressRoute, Entry>();
    for (const [route, candidates] of found) if (candidates.length > 0) built.set(route, toEntry(candidates));
    return built;
  }

  function place(route: ExpressRoute, current: unknown): Entry {
    let rebuild = false;
    if (isApp(current) && current !== app && !subApps.has(current) && subApps.size < MAX_SUB_APPS) {
      subApps.add(current);
      rebuild = true;
    }
    // Routes added after the first walk are found by walking again, once per route.
    if (!rebuiltFor.has(route)) {
      rebuiltFor.add(route);
      rebuild = true;
    }
    if (rebuild) {
      entries = build();
      const entry = entries.get(route);
      if (entry !== undefined) return entry;
    }
    let fallback = unplaced.get(route);
    if (fallback === undefined) {
      fallback = ownTemplate(route);
      unplaced.set(route, fallback);
      onUnplaced(fallback);
    }
    return fallback;
  }

  return {
    routeOf(req) {
      const route = req.route as ExpressRoute | undefined;
      if (route === undefined || route === null) return undefined;
      entries ??= build();
      const entry = entries.get(route) ?? place(route, req.app);
      if (typeof entry === 'string') return entry;
      return resolve(entry, req.originalUrl ?? req.url ?? '/');
    },
  };
}
