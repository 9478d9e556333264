import type { Problem } from 'job-store';
import { energyOf, flip, flipDelta, localFields, objectiveOf, type Qubo, toQubo } from './qubo.ts';
import { createRandom } from './settings.ts';

export interface ClassicalResult {
  /** 0 or 1 per variable (max-cut: the side of each vertex). */
  assignment: number[];
  /** The QUBO energy (minimised). */
  energy: number;
  /** The problem's objective: the cut weight of a max-cut, the energy of a QUBO. */
  value: number;
  /** Single-variable flips attempted (annealing) or assignments evaluated (brute force). */
  iterations: number;
  durationMs: number;
}

export interface AnnealOptions {
  /** Same seed, same answer. Default 1. */
  seed?: number;
  /** Sweeps (one attempted flip per variable each) per restart. Default 1000. */
  sweeps?: number;
  /** Independent runs from random starts; the best wins. Default 8. */
  restarts?: number;
}

const ANNEAL_DEFAULTS = Object.freeze({ seed: 1, sweeps: 1000, restarts: 8 });
/** Acceptance probability of the largest uphill move at the start and at the end of a run. */
const START_ACCEPTANCE = 0.5;
const END_ACCEPTANCE = 0.001;

/** Brute force is exact and takes 2^n steps: a check for small problems, not a solver. */
export const BRUTE_FORCE_MAX_VARIABLES = 20;

/**
 * Temperatures from the problem's own scale, so the schedule fits any weights: at the start the
 * largest single-flip change is accepted half the time, at the end the smallest one almost never.
 */
function temperatures(qubo: Qubo): { start: number; end: number } {
  const { size, linear, coupling } = qubo;
  let largest = 0;
  let smallest = Number.POSITIVE_INFINITY;
  const consider = (coefficient: number) => {
    const magnitude = Math.abs(coefficient);
    if (magnitude > 0 && magnitude < smallest) smallest = magnitude;
  };
  for (let i = 0; i < size; i++) {
    let reach = Math.abs(linear[i]!);
    consider(linear[i]!);
    for (let j = 0; j < size; j++) {
      reach += Math.abs(coupling[i * size + j]!);
      consider(coupling[i * size + j]!);
    }
    largest = Math.max(largest, reach);
  }
  if (largest === 0) return { start: 1, end: 1 };
  return { start: -largest / Math.log(START_ACCEPTANCE), end: -smallest / Math.log(END_ACCEPTANCE) };
}

function resultOf(
  problem: Problem,
  qubo: Qubo,
  best: Uint8Array,
  iterations: number,
  started: number,
): ClassicalResult {
  const energy = energyOf(qubo, best);
  return {
    assignment: Array.from(best),
    energy,
    value: objectiveOf(problem, energy),
    iterations,
    durationMs: performance.now() - started,
  };
}

/**
 * Simulated annealing on the problem's QUBO (max-cut converted): Metropolis single flips under a
 * geometric cooling schedule, several restarts, the best assignment seen kept. Deterministic for a
 * given seed.
 */
export function anneal(problem: Problem, options: AnnealOptions = {}): ClassicalResult {
  const started = performance.now();
  const { seed, sweeps, restarts } = { ...ANNEAL_DEFAULTS, ...options };
  const qubo = toQubo(problem);
  const { size } = qubo;
  const random = createRandom(seed);
  const { start, end } = temperatures(qubo);
  const cooling = sweeps > 1 ? (end / start) ** (1 / (sweeps - 1)) : 1;
  const assignment = new Uint8Array(size);
  const fields = new Float64Array(size);
  const best = new Uint8Array(size);
  let bestEnergy = Number.POSITIVE_INFINITY;
  let iterations = 0;

  for (let restart = 0; restart < restarts; restart++) {
    for (let i = 0; i < size; i++) assignment[i] = random() < 0.5 ? 1 : 0;
    localFields(qubo, assignment, fields);
    let energy = energyOf(qubo, assignment);
    let temperature = start;
    for (let sweep = 0; sweep < sweeps; sweep++) {
      for (let step = 0; step < size; step++) {
        const i = Math.floor(random() * size);
        const delta = flipDelta(assignment, fields, i);
        if (delta <= 0 || random() < Math.exp(-delta / temperature)) {
          flip(qubo, assignment, fields, i);
          energy += delta;
          if (energy < bestEnergy) {
            bestEnergy = energy;
            best.set(assignment);
          }
        }
      }
      iterations += size;
      temperature *= cooling;
    }
    if (energy < bestEnergy) {
      bestEnergy = energy;
      best.set(assignment);
    }
  }
  return resultOf(problem, qubo, best, iterations, started);
}

/**
 * Tries every assignment (in Gray-code order, one flip per step): the exact optimum, for checking
 * the heuristics on problems of at most `BRUTE_FORCE_MAX_VARIABLES` variables.
 */
export function bruteForce(problem: Problem): ClassicalResult {
  const started = performance.now();
  const qubo = toQubo(problem);
  const { size } = qubo;
  if (size > BRUTE_FORCE_MAX_VARIABLES) {
    throw new RangeError(
      `bruteForce takes 2^n steps: at most ${BRUTE_FORCE_MAX_VARIABLES} variables, got ${size}`,
    );
  }
  const assignment = new Uint8Array(size);
  const fields = new Float64Array(size);
  const best = new Uint8Array(size);
  localFields(qubo, assignment, fields);
  let energy = 0;
  let bestEnergy = 0;
  const steps = 2 ** size;
  for (let step = 1; step < steps; step++) {
    // Gray code: step k flips the bit of k's lowest set bit.
    const i = 31 - Math.clz32(step & -step);
    energy += flipDelta(assignment, fields, i);
    flip(qubo, assignment, fields, i);
    if (energy < bestEnergy) {
      bestEnergy = energy;
      best.set(assignment);
    }
  }
  return resultOf(problem, qubo, best, steps, started);
}
