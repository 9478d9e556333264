import type { HttpExchange } from '@sextant/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { kExchange, kPendingIncomingLog, kRoute } from './symbols.ts';

/** Writes Fastify's "incoming request" line once the request's exchange is known. */
export interface PendingIncomingLog {
  writeIncomingRequest(request: FastifyRequest, reply: FastifyReply): void;
}

/**
 * A request with the plugin's slots; the slots stay out of Fastify's public types. They are
 * undefined on a request whose class the plugin did not decorate: no plugin on that context, or
 * a request Fastify's router rejected before routing (see pending-log.ts).
 */
export type SextantRequest = FastifyRequest & {
  [kExchange]: HttpExchange | null | undefined;
  [kRoute]: string | null | undefined;
  [kPendingIncomingLog]: PendingIncomingLog | null | undefined;
};
