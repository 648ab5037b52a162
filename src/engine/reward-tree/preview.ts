/**
 * A reward tree previewed: each leaf with whether it could be given now (else why not), how likely the tree is to
 * choose it, and its outcomes' probabilities. Read-only peeks only: nothing is drawn, reserved or written.
 */
import type { RewardPreview, Unavailability } from "../define";
import type { TaskRun } from "../run";
import type { RewardNode, RewardTree } from "./tree";
import { eligible, guardFacts } from "./grant";
import { counterRemaining } from "../../counters/counters";
import { matchBranch, rightShares, type SegmentCheck } from "../../segments/decision";

/** A `bySegment` node previewed: the segments checked (by priority, up to the first match), the branch and the rights' shares. */
export interface SegmentPreview {
  node: string;
  /** The segment that matched; null: the default branch; undefined: none matched and there is no default. */
  matched?: string | null;
  checks: SegmentCheck[];
  by?: "weighted" | "sticky" | "external";
  /** The matched branch's rights: each one's weight, whether it is available now, and its chance of being chosen. */
  rights: { id: string; node: string; weight: number; available: boolean; chosen: number }[];
}

/** One leaf of a previewed tree. `chosen`: the probability the tree picks it; outcome probabilities include it. */
export interface LeafPreview extends RewardPreview {
  node: string;
  /** False when the leaf's guard (or an enclosing node's) does not hold for this run. */
  eligible: boolean;
  chosen: number;
}

/** The face value of a node: a leaf's highest possible amount, the sum of an `all`'s or `pickN`'s, a `oneOf`'s highest. */
export async function faceValue(run: TaskRun, node: RewardNode): Promise<number> {
  if (node.kind === "leaf") {
    const p = await node.reward.def.preview(run, node.reward.args);
    return Math.max(0, ...p.outcomes.map((o) => (typeof o.max === "number" ? o.max : o.amount)));
  }
  const values = await Promise.all(node.children.map((c) => faceValue(run, c)));
  return node.kind === "oneOf" ? Math.max(0, ...values) : values.reduce((a, b) => a + b, 0);
}

/**
 * Previews every leaf. `blocked` is the run's own refusal (LIMIT, NO_CHANCES…): every reward is then unavailable
 * for that reason, though its outcomes are still shown.
 */
export async function previewTree(run: TaskRun, tree: RewardTree, blocked?: Unavailability, segments: SegmentPreview[] = []): Promise<LeafPreview[]> {
  const facts = await guardFacts(tree, run);
  const out: LeafPreview[] = [];

  /** Previews `node` reached with probability `p`; answers whether it could give anything. */
  async function visit(node: RewardNode, p: number, open: boolean, budgetLeft: number): Promise<boolean> {
    let left = budgetLeft;
    if (node.budget)
      left = Math.min(left, await counterRemaining(run.init.env, run.sharedCounter(node.budget.key, node.budget.total, node.budget.shards)));
    if (node.kind === "leaf") {
      const preview = await node.reward.def.preview(run, node.reward.args);
      const least = Math.min(...preview.outcomes.map((o) => o.amount));
      let answer: RewardPreview = preview;
      if (preview.available && preview.outcomes.length > 0 && least > left) answer = { ...preview, available: false, reason: "BUDGET" };
      if (answer.available && blocked) answer = { ...answer, available: false, reason: blocked };
      const chosen = open && answer.available ? p : 0;
      out.push({
        ...answer,
        node: node.path,
        eligible: open,
        chosen,
        outcomes: answer.outcomes.map((o) => ({ ...o, probability: o.probability * chosen })),
      });
      return open && preview.available && !(preview.outcomes.length > 0 && least > left);
    }
    const ok = new Set(open ? eligible(node.children, facts) : []);
    if (node.kind === "bySegment") {
      // Only the matched branch's rights can be chosen; those of other segments are shown as not eligible.
      const { branch, checks } = open ? await matchBranch(run, node) : { branch: undefined, checks: [] };
      const mine = new Set(branch?.rights.map((r) => r.node) ?? []);
      const can = new Map<RewardNode, boolean>();
      const start = out.length;
      for (const c of node.children) can.set(c, await visit(c, 0, ok.has(c) && mine.has(c), left));
      out.splice(start);
      const available = (branch?.rights ?? []).filter((r) => ok.has(r.node) && can.get(r.node));
      const shares = branch ? await rightShares(run, branch, available) : new Map();
      const share = new Map([...shares].map(([r, x]) => [r.node, x] as const));
      for (const c of node.children) await visit(c, p * (share.get(c) ?? 0), ok.has(c) && mine.has(c), left);
      if (open) {
        segments.push({
          node: node.path,
          ...(branch && { matched: branch.segment?.id ?? null, by: branch.choose.by }),
          checks,
          rights: (branch?.rights ?? []).map((r) => ({
            id: r.id,
            node: r.node.path,
            weight: r.node.weight,
            available: available.includes(r),
            chosen: p * (shares.get(r) ?? 0),
          })),
        });
      }
      return available.length > 0;
    }
    if (node.kind === "all") {
      const given = [];
      for (const c of node.children) given.push(await visit(c, p, ok.has(c), left));
      return given.some(Boolean);
    }
    // Which children could give: a first pass with nothing chosen, then the probabilities among those.
    const can = new Map<RewardNode, boolean>();
    const start = out.length;
    for (const c of node.children) can.set(c, await visit(c, 0, ok.has(c), left));
    out.splice(start);
    const available = node.children.filter((c) => ok.has(c) && can.get(c));
    let share: (c: RewardNode) => number;
    if (node.kind === "oneOf" && node.strategy !== "weighted") {
      let first = available[0];
      if (node.strategy === "highestValue" && available.length > 0) {
        const values = await Promise.all(available.map((c) => faceValue(run, c)));
        first = available[values.indexOf(Math.max(...values))];
      }
      share = (c) => (c === first ? 1 : 0);
    } else {
      const total = available.reduce((n, c) => n + c.weight, 0);
      const n = node.kind === "pickN" ? node.n : 1;
      // pickN: each of n draws without replacement; exact for equal weights, an estimate otherwise.
      share = (c) => (available.includes(c) ? Math.min(1, (n * c.weight) / total) : 0);
    }
    for (const c of node.children) await visit(c, p * share(c), ok.has(c), left);
    return available.length > 0;
  }

  await visit(tree.root, 1, eligible([tree.root], facts).length > 0, Number.POSITIVE_INFINITY);
  return out;
}
