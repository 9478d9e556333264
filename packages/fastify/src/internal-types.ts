import type { HttpExchange } from '@sextant/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { kExchange, kPendingIncomingLog, kRoute } from './symbols.ts';

/** Writes Fastify's "incoming request" line once the request's context exists. */
export interface PendingIncomingLog {
  writeIncomingRequest(request: FastifyRequest, reply: FastifyReply): void;
}

/** A request with the plugin's slots; the slots stay out of Fastify's public types. */
export type SextantRequest = FastifyRequest & {
  [kExchange]: HttpExchange | null;
  [kRoute]: string | null;
  [kPendingIncomingLog]: PendingIncomingLog | null;
};
