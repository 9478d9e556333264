import { fileURLToPath } from 'node:url';

/** What the worker's end-to-end tests share: where the two apps live, a small problem, a fast provider. */
export const API_CWD = fileURLToPath(new URL('../../express-api', import.meta.url));
export const WORKER_CWD = fileURLToPath(new URL('..', import.meta.url));
export const SQUARE = {
  type: 'maxcut',
  edges: [
    [0, 1],
    [1, 2],
    [2, 3],
    [3, 0],
  ],
};
// A fast, deterministic simulated provider: the tests are about the path, not the solver.
export const SOLVER_ENV = { QUANTUM_QUEUE_MS: '5', QUANTUM_LATENCY_MS: '10', QUANTUM_FAILURE_RATE: '0' };
