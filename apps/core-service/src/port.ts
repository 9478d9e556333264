import type { Sextant } from '@sextant/core';

/** The port when `PORT` is unset or blank. */
export const DEFAULT_PORT = 3000;

/**
 * The listening port, from `PORT`: digits, 0 to 65535 (0 picks a free port), surrounding spaces
 * ignored; unset or blank (`PORT=` in a .env file) means {@link DEFAULT_PORT}. Anything else is a
 * fatal record naming the variable, the value as given and what is allowed, and `undefined`: the
 * caller exits with code 1 without listening. Digits only, because `Number('')` is 0 (a random
 * port) and `Number('0x50')` is 80, neither what was meant. The same rule as the other sample
 * apps' (job-store's `portFromEnv`), kept here so that this template needs `@sextant/core` alone.
 */
export function portFromEnv(
  sextant: Pick<Sextant, 'logger'>,
  env: Readonly<Record<string, string | undefined>> = process.env,
): number | undefined {
  const given = env.PORT;
  const raw = given?.trim() ?? '';
  if (raw === '') return DEFAULT_PORT;
  const port = /^\d{1,5}$/.test(raw) ? Number(raw) : Number.NaN;
  if (port >= 0 && port <= 65_535) return port;
  sextant.logger.fatal(
    { port: given },
    `PORT must be an integer from 0 to 65535, got ${JSON.stringify(given)}`,
  );
  return undefined;
}
