import { FASTIFY_ROUTE_CONFIG_METADATA, NO_TRACE_METADATA } from './constants.ts';

interface ReflectMetadataApi {
  getMetadata(key: unknown, target: object): unknown;
  defineMetadata(key: unknown, value: unknown, target: object): void;
}

function mark(target: object): void {
  const reflect = Reflect as unknown as ReflectMetadataApi;
  reflect.defineMetadata(NO_TRACE_METADATA, true, target);
  // Fastify: @sextant/fastify skips routes whose config says `sextant: false`; merged so that a
  // `@RouteConfig()` below this decorator keeps its keys.
  const config = reflect.getMetadata(FASTIFY_ROUTE_CONFIG_METADATA, target) as object | undefined;
  reflect.defineMetadata(FASTIFY_ROUTE_CONFIG_METADATA, { ...config, sextant: false }, target);
}

/**
 * Leaves a route handler out of Sextant: no span, no request metrics, no access log record, no
 * correlation id. For probes and high-volume internal routes. On Fastify, put it above
 * `@RouteConfig()`.
 */
export function NoTrace(): MethodDecorator {
  return (_target, _key, descriptor) => {
    mark(descriptor.value as object);
    return descriptor;
  };
}
