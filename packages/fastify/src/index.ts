// @sextant/fastify: the public API is exactly what this file names.

export type { LogControllerOptions } from './log-controller.ts';
export { sextantFastify } from './plugin.ts';

// Fastify constructor options (logger, request ids, request log lines)
export type { SextantServerOptions } from './server-options.ts';
export { sextantServerOptions } from './server-options.ts';
// Plugin
export type { SextantFastifyOptions } from './types.ts';
