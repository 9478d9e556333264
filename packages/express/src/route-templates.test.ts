import express5 from 'express';
import express4 from 'express4';
import { describe, expect, it } from 'vitest';
import type { ExpressApp, ExpressLayer, ExpressRouter } from './internal-types.ts';
import {
  appRouter,
  createRouteTemplates,
  joinRoute,
  mountTemplate,
  reverseExpress4Mount,
} from './route-templates.ts';

const noop = () => {};

/** The layer `router.use(path, ...)` adds in Express 4, and that router. */
function express4Mount(path: string | RegExp | string[], options: { caseSensitive?: boolean } = {}) {
  const router = express4.Router(options) as unknown as ExpressRouter;
  (router as unknown as express5.Router).use(path as string, noop);
  return { layer: router.stack[0]!, router };
}

describe('mountTemplate and joinRoute', () => {
  it('drops trailing slashes of mounts and keeps a router root route as the mount itself', () => {
    expect(mountTemplate('/')).toBe('');
    expect(mountTemplate('/api/')).toBe('/api');
    expect(mountTemplate('/orgs/:org')).toBe('/orgs/:org');
    expect(joinRoute('', '/')).toBe('/');
    expect(joinRoute('/jobs', '/')).toBe('/jobs');
    expect(joinRoute('/jobs', '/:id')).toBe('/jobs/:id');
    expect(joinRoute('/files', /^\/(\d+)$/)).toBe('/files/^\\/(\\d+)$/');
  });
});

describe('reverseExpress4Mount', () => {
  it.each([
    ['/orgs/:org', ['/orgs/:org']],
    ['/api/', ['/api']],
    ['/a/:b?', ['/a/:b?']],
    ['/f/:file.:ext', ['/f/:file.:ext']],
    ['/x/*', ['/x/*']],
    ['/v1/:version/things', ['/v1/:version/things']],
  ])('reads back %s', (path, expected) => {
    const { layer, router } = express4Mount(path);
    expect(reverseExpress4Mount(layer, router)).toEqual(expected);
  });

  it('reads back each alternative of a path array', () => {
    const { layer, router } = express4Mount(['/v1', '/v2/:version']);
    expect(reverseExpress4Mount(layer, router)).toEqual(['/v1', '/v2/:version']);
  });

  it('reads back a case-sensitive router mount (no i flag)', () => {
    const { layer, router } = express4Mount('/Orgs/:org', { caseSensitive: true });
    expect(reverseExpress4Mount(layer, router)).toEqual(['/Orgs/:org']);
  });

  it('gives up, rather than guess, on shapes it cannot prove (inline captures, regexps)', () => {
    for (const path of ['/user-:id', /^\/re\d+/, '/x/:id(\\d+)']) {
      const { layer, router } = express4Mount(path);
      expect(reverseExpress4Mount(layer, router)).toBeUndefined();
    }
  });
});

describe('appRouter', () => {
  it("reads Express 5's router and Express 4's _router without touching Express 4's throwing getter", () => {
    const app5 = express5();
    app5.get('/', noop);
    const app4 = express4();
    app4.get('/', noop);
    expect(appRouter(app5 as unknown as ExpressApp)?.stack).toHaveLength(1);
    expect(appRouter(app4 as unknown as ExpressApp)?.stack.length).toBeGreaterThanOrEqual(1);
    expect(appRouter(express4() as unknown as ExpressApp)).toBeUndefined();
  });
});

describe('createRouteTemplates', () => {
  function request(app: unknown, route: unknown, url: string) {
    return { app, route, originalUrl: url };
  }

  it('places a route mounted through a wrapper function under its own path, once reported', () => {
    const app = express5();
    const hidden = express5.Router();
    hidden.get('/hello/:name', noop);
    app.use('/wrapped', (req, res, next) => hidden(req, res, next));
    const route = (hidden.stack[0] as unknown as ExpressLayer).route;
    const reported: string[] = [];
    const templates = createRouteTemplates(app as unknown as ExpressApp, (template) =>
      reported.push(template),
    );
    expect(templates.routeOf(request(app, route, '/wrapped/hello/x'))).toBe('/hello/:name');
    expect(templates.routeOf(request(app, route, '/wrapped/hello/y'))).toBe('/hello/:name');
    expect(reported).toEqual(['/hello/:name']);
  });

  it('cannot read Express 5 mounts without rawPath (router < 2.3) and says so', () => {
    const child = { stack: [] as ExpressLayer[] } as ExpressRouter;
    const route = { path: '/items/:id' };
    child.stack.push({ handle: noop, route, matchers: [() => ({ path: '/items/1' })] });
    const handle = Object.assign(noop.bind(null), child);
    const app = {
      router: { stack: [{ handle, matchers: [() => ({ path: '/api' })] }] },
    } as unknown as ExpressApp;
    const reported: string[] = [];
    const templates = createRouteTemplates(app, (template) => reported.push(template));
    expect(templates.routeOf(request(app, route, '/api/items/1'))).toBe('/items/:id');
    expect(reported).toEqual(['/items/:id']);
  });

  it('returns undefined when no route matched and survives a malformed escape in an ambiguous path', () => {
    const app = express5();
    const items = express5.Router();
    items.get('/:id', noop);
    app.use(['/a', '/b'], items);
    const route = (items.stack[0] as unknown as ExpressLayer).route;
    const templates = createRouteTemplates(app as unknown as ExpressApp, noop);
    expect(templates.routeOf(request(app, undefined, '/nothing'))).toBeUndefined();
    expect(templates.routeOf(request(app, route, '/b/%E0%A4%A'))).toBe('/a/:id');
    expect(templates.routeOf(request(app, route, '/b/7?x=1'))).toBe('/b/:id');
  });
});
