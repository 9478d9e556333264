import { Inject } from '@nestjs/common';
import { SEXTANT, SEXTANT_LOGGER, SEXTANT_METRICS } from './constants.ts';

/** Injects the `Sextant` instance (`@InjectSextant() sextant: Sextant`). */
export const InjectSextant = (): PropertyDecorator & ParameterDecorator => Inject(SEXTANT);
/** Injects Sextant's pino logger (`@InjectLogger() logger: Logger`): its records carry the request's ids. */
export const InjectLogger = (): PropertyDecorator & ParameterDecorator => Inject(SEXTANT_LOGGER);
/** Injects Sextant's metrics (`@InjectMetrics() metrics: Metrics`), to declare the app's own instruments. */
export const InjectMetrics = (): PropertyDecorator & ParameterDecorator => Inject(SEXTANT_METRICS);
