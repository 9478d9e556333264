/** What every server variant shares: the answer of `GET /users/:id` and the peers' log destination. */
import pino from 'pino';

export function user(id: string) {
  return { id, name: `User ${id}`, plan: 'pro', active: true };
}

/**
 * The peer stacks log to /dev/null through pino's asynchronous destination (SonicBoom), pino's fast
 * setting. Sextant logs to its own default, stdout, which the bench points at /dev/null: each stack
 * is measured writing the way it writes in production.
 */
export function logDestination() {
  return pino.destination({ dest: '/dev/null', sync: false });
}
