/** Request slots, declared once with `decorateRequest(k, null)` so every request has the same shape. */

/** The request's `HttpExchange`; null until onRequest begins it, and for routes that opt out. */
export const kExchange = Symbol('sextant.exchange');
/** The matched route template, read once in onRequest; null when no route matched. */
export const kRoute = Symbol('sextant.route');
/** Fastify's "incoming request" line, held back until the request's context exists (see log-controller.ts). */
export const kPendingIncomingLog = Symbol('sextant.pendingIncomingLog');
/** On the raw request: the id `sextantServerOptions().genReqId` chose, so the exchange uses the same one. */
export const kChosenRequestId = Symbol('sextant.chosenRequestId');
