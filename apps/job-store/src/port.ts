import type { Sextant } from '@sextant/core';
import { type Environment, envSetting } from './env.ts';

/** The HTTP apps' port when `PORT` is unset or blank. */
export const DEFAULT_PORT = 3000;

/**
 * The HTTP apps' listening port, from `PORT`: digits, 0 to 65535 (0 picks a free port), surrounding
 * spaces ignored; unset or blank means {@link DEFAULT_PORT}. Anything else is a fatal record naming
 * the variable, the value as given and what is allowed, and `undefined`: the caller exits with
 * code 1 without listening. Digits only, because `Number('0x50')` is 80 and `Number('1e3')` 1000,
 * neither what was meant.
 */
export function portFromEnv(
  sextant: Pick<Sextant, 'logger'>,
  env: Environment = process.env,
): number | undefined {
  const raw = envSetting('PORT', env);
  if (raw === undefined) return DEFAULT_PORT;
  const port = /^\d{1,5}$/.test(raw) ? Number(raw) : Number.NaN;
  if (port >= 0 && port <= 65_535) return port;
  const given = env.PORT;
  sextant.logger.fatal(
    { port: given },
    `PORT must be an integer from 0 to 65535, got ${JSON.stringify(given)}`,
  );
  return undefined;
}
