// @sextant/express: the public API is exactly what this file names.

export { createEndpointsHandler } from './endpoints.ts';
export { createErrorHandler, createSextantMiddleware } from './middleware.ts';
export type { SextantExpressOptions } from './types.ts';
