import type { MaxCutProblem } from './problem.ts';

export interface MaxCutResult {
  /** Edges whose ends fall on different sides. */
  cut_value: number;
  /** Side (0 or 1) of each node, by node id. */
  partition: Record<string, 0 | 1>;
  method: 'exhaustive' | 'local_search';
}

/** Up to this many nodes every partition is tried; past it, a greedy local search. */
const EXHAUSTIVE_NODE_LIMIT = 16;

function cutValue(edges: ReadonlyArray<readonly [number, number]>, side: ReadonlyMap<number, 0 | 1>): number {
  let value = 0;
  for (const [a, b] of edges) if (side.get(a) !== side.get(b)) value++;
  return value;
}

/**
 * The classical stand-in for the quantum solver of the real service: small enough to run in
 * process, exact on small graphs.
 */
export function solveMaxCut(problem: MaxCutProblem): MaxCutResult {
  const nodes = [...new Set(problem.edges.flat())].sort((a, b) => a - b);
  const side = new Map<number, 0 | 1>(nodes.map((node) => [node, 0]));
  let method: MaxCutResult['method'];

  if (nodes.length <= EXHAUSTIVE_NODE_LIMIT) {
    method = 'exhaustive';
    // The first node stays on side 0: a partition and its mirror image cut the same edges.
    const place = (mask: number) => {
      for (let i = 1; i < nodes.length; i++) side.set(nodes[i]!, ((mask >> (i - 1)) & 1) as 0 | 1);
    };
    let best = -1;
    let bestMask = 0;
    for (let mask = 0; mask < 1 << Math.max(nodes.length - 1, 0); mask++) {
      place(mask);
      const value = cutValue(problem.edges, side);
      if (value > best) {
        best = value;
        bestMask = mask;
      }
    }
    place(bestMask);
  } else {
    method = 'local_search';
    const neighbours = new Map<number, number[]>(nodes.map((node) => [node, []]));
    for (const [a, b] of problem.edges) {
      neighbours.get(a)!.push(b);
      neighbours.get(b)!.push(a);
    }
    // Move any node with more neighbours on its own side than across; each move raises the cut.
    let improved = true;
    while (improved) {
      improved = false;
      for (const node of nodes) {
        let same = 0;
        for (const other of neighbours.get(node)!)
          if (other !== node && side.get(other) === side.get(node)) same++;
        const across = neighbours.get(node)!.filter((other) => other !== node).length - same;
        if (same > across) {
          side.set(node, side.get(node) === 0 ? 1 : 0);
          improved = true;
        }
      }
    }
  }
  return { cut_value: cutValue(problem.edges, side), partition: Object.fromEntries(side), method };
}
