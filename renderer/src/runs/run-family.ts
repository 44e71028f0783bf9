// The runs list as a family tree: a fork (a run continued from a stage of another) is listed
// right under its parent, indented one step per generation. Runs whose parent is not in the
// list stay at the top level (their parent link still names it).
import type { RunSummary } from '../../../core/api';

export interface FamilyRow { run: RunSummary; depth: number }

/** Rows in list order, each run's children (in list order) right after it. */
export function familyOrder(runs: readonly RunSummary[]): FamilyRow[] {
  const ids = new Set(runs.map((r) => r.id));
  const children = new Map<string, RunSummary[]>();
  const roots: RunSummary[] = [];
  for (const run of runs) {
    const parent = run.parent?.runId;
    if (parent !== undefined && parent !== run.id && ids.has(parent)) {
      const list = children.get(parent) ?? [];
      list.push(run);
      children.set(parent, list);
    } else roots.push(run);
  }
  const out: FamilyRow[] = [];
  const seen = new Set<string>();
  const visit = (run: RunSummary, depth: number) => {
    if (seen.has(run.id)) return;
    seen.add(run.id);
    out.push({ run, depth });
    for (const child of children.get(run.id) ?? []) visit(child, depth + 1);
  };
  for (const run of roots) visit(run, 0);
  // A parent loop (hand-edited run.json files) would leave runs unvisited: list them flat.
  for (const run of runs) visit(run, 0);
  return out;
}
