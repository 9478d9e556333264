import { type Problem, problemSize } from 'job-store';

/**
 * A QUBO in the form the solvers work on: `energy(x) = Σ linear[i]·x[i] + Σ_{i<j} coupling[i·n+j]·x[i]·x[j]`.
 * `coupling` is dense and symmetric (both halves filled, zero diagonal), so flipping one
 * variable changes the energy by `(1 − 2·x[i]) · (linear[i] + Σ_j coupling[i·n+j]·x[j])`.
 */
export interface Qubo {
  readonly size: number;
  readonly linear: Float64Array;
  readonly coupling: Float64Array;
}

function emptyQubo(size: number): Qubo {
  return { size, linear: new Float64Array(size), coupling: new Float64Array(size * size) };
}

function addPair(qubo: Qubo, i: number, j: number, weight: number): void {
  qubo.coupling[i * qubo.size + j]! += weight;
  qubo.coupling[j * qubo.size + i]! += weight;
}

/**
 * Max-cut as a QUBO: an edge (i, j) of weight w is cut when x_i ≠ x_j, which is
 * `w·(x_i + x_j − 2·x_i·x_j)`; minimising its negation maximises the cut, so cut = −energy.
 */
export function toQubo(problem: Problem): Qubo {
  const qubo = emptyQubo(problemSize(problem));
  if (problem.type === 'qubo') {
    const { matrix } = problem;
    for (let i = 0; i < qubo.size; i++) {
      const row = matrix[i]!;
      qubo.linear[i] = row[i]!;
      for (let j = i + 1; j < qubo.size; j++) addPair(qubo, i, j, row[j]! + matrix[j]![i]!);
    }
    return qubo;
  }
  const { edges, weights } = problem;
  for (let e = 0; e < edges.length; e++) {
    const [i, j] = edges[e]!;
    const weight = weights?.[e] ?? 1;
    qubo.linear[i]! -= weight;
    qubo.linear[j]! -= weight;
    addPair(qubo, i, j, 2 * weight);
  }
  return qubo;
}

export function energyOf(qubo: Qubo, assignment: ArrayLike<number>): number {
  const { size, linear, coupling } = qubo;
  let energy = 0;
  for (let i = 0; i < size; i++) {
    if (assignment[i] !== 1) continue;
    energy += linear[i]!;
    for (let j = i + 1; j < size; j++) if (assignment[j] === 1) energy += coupling[i * size + j]!;
  }
  return energy;
}

/** The problem's own objective: the cut weight of a max-cut (maximised), the energy of a QUBO (minimised). */
export function objectiveOf(problem: Problem, energy: number): number {
  // `0 - energy`, not `-energy`: an empty cut is 0, not -0, in JSON and in comparisons.
  return problem.type === 'maxcut' ? 0 - energy : energy;
}

/** Local fields `linear[i] + Σ_j coupling[i·n+j]·x[j]`, kept up to date by `flip`. */
export function localFields(qubo: Qubo, assignment: Uint8Array, fields: Float64Array): void {
  const { size, linear, coupling } = qubo;
  for (let i = 0; i < size; i++) {
    let field = linear[i]!;
    for (let j = 0; j < size; j++) if (assignment[j] === 1) field += coupling[i * size + j]!;
    fields[i] = field;
  }
}

/** The energy change of flipping variable `i`. */
export function flipDelta(assignment: Uint8Array, fields: Float64Array, i: number): number {
  return assignment[i] === 1 ? -fields[i]! : fields[i]!;
}

/** Flips variable `i` and updates every local field. */
export function flip(qubo: Qubo, assignment: Uint8Array, fields: Float64Array, i: number): void {
  const { size, coupling } = qubo;
  const step = assignment[i] === 1 ? -1 : 1;
  assignment[i] = step === 1 ? 1 : 0;
  const row = i * size;
  for (let j = 0; j < size; j++) fields[j]! += step * coupling[row + j]!;
}
