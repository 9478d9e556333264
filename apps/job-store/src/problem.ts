/**
 * The problems the solver accepts, validated by hand so every message can say exactly what is
 * wrong. The HTTP apps answer 400 with it and the worker refuses the job with it: one rule in
 * both places, so a job answered 202 is never one the worker then rejects.
 *
 * Max-cut: vertices are `0..n-1`, where `n` is the largest vertex id plus one (an id that no edge
 * names is an isolated vertex). Each edge has weight 1 unless `weights` gives one per edge.
 *
 * QUBO: any square matrix `Q`; the energy of a 0/1 assignment `x` is `xᵀQx` and is minimised.
 * Symmetric and upper-triangular matrices therefore both mean what their authors expect: the
 * pair (i, j) contributes `Q[i][j] + Q[j][i]`.
 */

export interface MaxCutProblem {
  type: 'maxcut';
  edges: Array<[number, number]>;
  /** One per edge; 1 for every edge when absent. */
  weights?: number[];
}

export interface QuboProblem {
  type: 'qubo';
  matrix: number[][];
}

export type Problem = MaxCutProblem | QuboProblem;
export type ProblemType = Problem['type'];

/** The most variables (max-cut vertices, QUBO rows) one problem may have: what one job can hold. */
export const MAX_VARIABLES = 64;
export const MAX_EDGES = (MAX_VARIABLES * (MAX_VARIABLES - 1)) / 2;
/** Bounds each weight and coefficient so no energy sum overflows float precision. */
export const MAX_COEFFICIENT = 1e9;

export type ProblemValidation = { ok: true; problem: Problem } | { ok: false; message: string };

function invalid(message: string): ProblemValidation {
  return { ok: false, message };
}

function isCoefficient(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && Math.abs(value) <= MAX_COEFFICIENT;
}

/** Vertices of a max-cut problem, variables of a QUBO: the qubits an annealer needs. */
export function problemSize(problem: Problem): number {
  if (problem.type === 'qubo') return problem.matrix.length;
  let largest = -1;
  for (const [a, b] of problem.edges) largest = Math.max(largest, a, b);
  return largest + 1;
}

function validateMaxCut(body: Record<string, unknown>): ProblemValidation {
  const { edges, weights } = body;
  if (!Array.isArray(edges)) return invalid('"edges" must be an array of [vertex, vertex] pairs');
  if (edges.length === 0) return invalid('"edges" must hold at least one edge');
  if (edges.length > MAX_EDGES) {
    return invalid(`"edges" may hold at most ${MAX_EDGES} edges, got ${edges.length}`);
  }
  for (let i = 0; i < edges.length; i++) {
    const edge: unknown = edges[i];
    if (
      !Array.isArray(edge) ||
      edge.length !== 2 ||
      !Number.isSafeInteger(edge[0]) ||
      !Number.isSafeInteger(edge[1]) ||
      edge[0] < 0 ||
      edge[1] < 0
    ) {
      return invalid(`"edges[${i}]" must be a pair of non-negative integers, like [0, 1]`);
    }
    if (edge[0] >= MAX_VARIABLES || edge[1] >= MAX_VARIABLES) {
      return invalid(
        `"edges[${i}]" names vertex ${Math.max(edge[0], edge[1])}: vertices are numbered from 0 to ${MAX_VARIABLES - 1} (at most ${MAX_VARIABLES} vertices)`,
      );
    }
    if (edge[0] === edge[1]) {
      return invalid(
        `"edges[${i}]" joins vertex ${edge[0]} to itself: an edge must join two different vertices`,
      );
    }
  }
  if (weights !== undefined) {
    if (!Array.isArray(weights) || weights.length !== edges.length) {
      return invalid(`"weights" must be an array of numbers, one per edge (${edges.length})`);
    }
    for (let i = 0; i < weights.length; i++) {
      if (!isCoefficient(weights[i])) {
        return invalid(
          `"weights[${i}]" must be a finite number between -${MAX_COEFFICIENT} and ${MAX_COEFFICIENT}`,
        );
      }
    }
  }
  const problem: MaxCutProblem = { type: 'maxcut', edges: edges as Array<[number, number]> };
  if (weights !== undefined) problem.weights = weights as number[];
  return { ok: true, problem };
}

function validateQubo(body: Record<string, unknown>): ProblemValidation {
  const { matrix } = body;
  if (!Array.isArray(matrix) || matrix.length === 0) {
    return invalid('"matrix" must be a non-empty square array of number rows, like [[1, -2], [0, 1]]');
  }
  const size = matrix.length;
  if (size > MAX_VARIABLES) {
    return invalid(`"matrix" may have at most ${MAX_VARIABLES} rows (variables), got ${size}`);
  }
  for (let i = 0; i < size; i++) {
    const row: unknown = matrix[i];
    if (!Array.isArray(row) || row.length !== size) {
      return invalid(`"matrix[${i}]" must be an array of ${size} numbers: the matrix must be square`);
    }
    for (let j = 0; j < size; j++) {
      if (!isCoefficient(row[j])) {
        return invalid(
          `"matrix[${i}][${j}]" must be a finite number between -${MAX_COEFFICIENT} and ${MAX_COEFFICIENT}`,
        );
      }
    }
  }
  return { ok: true, problem: { type: 'qubo', matrix: matrix as number[][] } };
}

/** Checks an untrusted body (an HTTP request, a queue payload) and says what is wrong with it. */
export function validateProblem(body: unknown): ProblemValidation {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return invalid('the problem must be a JSON object, like {"type": "maxcut", "edges": [[0, 1]]}');
  }
  const fields = body as Record<string, unknown>;
  if (fields.type === 'maxcut') return validateMaxCut(fields);
  if (fields.type === 'qubo') return validateQubo(fields);
  return invalid(`"type" must be "maxcut" or "qubo", got ${JSON.stringify(fields.type) ?? 'nothing'}`);
}
