import type { FastifyInstance, FastifyReply } from 'fastify';
import type { SextantRequest } from './internal-types.ts';
import { kExchange, kPendingIncomingLog } from './symbols.ts';

/**
 * Fastify's "incoming request" line, if Sextant's log controller held it back (see
 * log-controller.ts), once the request's exchange is known: the controller writes or drops it.
 */
export function writePendingIncomingLog(request: SextantRequest, reply: FastifyReply): void {
  const pending = request[kPendingIncomingLog];
  // undefined: a request of a class the plugin did not decorate, whose line was not held back.
  if (pending == null) return;
  request[kPendingIncomingLog] = null;
  pending.writeIncomingRequest(request, reply);
}

const served = new WeakMap<object, boolean>();

/**
 * Whether the plugin is registered on `server` itself, so that its requests have the plugin's
 * slots. Fastify builds the requests its router rejects (a bad URL) from its undecorated
 * `Request` class, with the root instance as their server: for those the slots are undefined
 * though the plugin is there. Requests arrive once the app is ready, when the answer is final.
 */
export function pluginServes(server: FastifyInstance): boolean {
  let serves = served.get(server);
  if (serves === undefined) {
    serves = server.hasRequestDecorator(kExchange);
    served.set(server, serves);
  }
  return serves;
}
