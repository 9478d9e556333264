/** A max-cut problem as the API accepts it, validated by hand so every message can say exactly what is wrong. */
export interface MaxCutProblem {
  type: 'maxcut';
  edges: Array<[number, number]>;
}

export const MAX_EDGES = 10_000;

export type Validation = { ok: true; problem: MaxCutProblem } | { ok: false; message: string };

function invalid(message: string): Validation {
  return { ok: false, message };
}

function isNode(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

export function validateProblem(body: unknown): Validation {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return invalid('the body must be a JSON object sent with content-type application/json');
  }
  const { type, edges } = body as Record<string, unknown>;
  if (type !== 'maxcut') return invalid('"type" must be "maxcut"');
  if (!Array.isArray(edges)) return invalid('"edges" must be an array of [node, node] pairs');
  if (edges.length === 0) return invalid('"edges" must hold at least one edge');
  if (edges.length > MAX_EDGES)
    return invalid(`"edges" may hold at most ${MAX_EDGES} edges, got ${edges.length}`);
  for (let i = 0; i < edges.length; i++) {
    const edge: unknown = edges[i];
    if (!Array.isArray(edge) || edge.length !== 2 || !isNode(edge[0]) || !isNode(edge[1])) {
      return invalid(`"edges[${i}]" must be a pair of non-negative integers, like [0, 1]`);
    }
  }
  return { ok: true, problem: { type, edges: edges as Array<[number, number]> } };
}
