export { resolveConfig } from './config.ts';
