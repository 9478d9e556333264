// The worker's solving domain: problems, the classical solver, the simulated quantum provider and
// the solver that ties them to `sextant.quantum`.

export type { MaxCutProblem, Problem, ProblemType, ProblemValidation, QuboProblem } from 'job-store';
export { MAX_COEFFICIENT, MAX_EDGES, MAX_VARIABLES, problemSize, validateProblem } from 'job-store';
export type { AnnealOptions, ClassicalResult } from './classical.ts';
export { anneal, BRUTE_FORCE_MAX_VARIABLES, bruteForce } from './classical.ts';
export type {
  ProviderSample,
  QuantumProvider,
  SampleRequest,
  SimulatedProvider,
  SimulatedProviderChanges,
  SimulatedProviderOptions,
  SimulatedProviderSettings,
} from './provider.ts';
export {
  createSimulatedProvider,
  ProviderError,
  ProviderFailureError,
  ProviderOutageError,
  QuotaExhaustedError,
} from './provider.ts';
export type { Environment } from './settings.ts';
export { SolverConfigError } from './settings.ts';
export type {
  SolveDurations,
  SolveJob,
  SolveOutcome,
  Solver,
  SolverFallbackReason,
  SolverOptions,
} from './solve.ts';
export { createSolver, InvalidProblemError } from './solve.ts';
