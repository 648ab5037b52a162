/**
 * Condition-tree evaluation (issue 11): a 50-leaf tree over prefetched facts, evaluations per second, beside a
 * baseline from the same run: the same 50 conditions' checks called directly in a loop, with no tree and no
 * explanation. The ratio is what the tree and its whole explanation cost over the checks themselves. Evaluation is
 * pure, so this runs in Node (tsx) without the worker: `BENCH_ONLY=conditions npm run bench`, or
 * `npx tsx bench/conditions.ts`. Goal: ≥ 100,000 evaluations/s.
 */
import { pathToFileURL } from "node:url";
import type { ConditionFacts } from "../src/engine/conditions/define";
import { compileTree, evaluate, type ConditionTree, type TreeNode } from "../src/engine/conditions/tree";

const SECONDS = Number(process.env.BENCH_CONDITION_SECONDS ?? 2);

/** Ten leaves of every kind a tree meets: payload fields with a wildcard and a regex, attributes, groups, history, clock. */
const tenLeaves = (i: number) => [
  { event: { path: "amount", op: "gte", value: 100 + i } },
  { event: { path: "channel", op: "in", value: ["app", "mini"] } },
  { event: { path: "items[*].category", op: "in", value: ["hotel", "flight"] } },
  { event: { path: "orderId", op: "regex", value: `^o-\\d+-${i}$` } },
  { attribute: { name: "rank", op: "gte", value: 2 } },
  { attribute: { name: "city", op: "eq", value: "Shanghai" } },
  { group: { in: ["vip", `tier-${i}`] } },
  { participations: { period: "week", op: "gte", n: i } },
  { newUser: { days: 30 } },
  { timeOfDay: { from: "09:00", to: "21:00" } },
];

/** 50 leaves: all[ atLeast 3 of 10, any[10], not{any[10]}, all[10], atLeast 5 of 10 ]. */
const RAW = {
  all: [
    { atLeast: { n: 3, of: tenLeaves(0) } },
    { any: tenLeaves(1) },
    { not: { any: tenLeaves(2).map((l) => ({ not: l })) } },
    { all: tenLeaves(3) },
    { atLeast: { n: 5, of: tenLeaves(4) } },
  ],
};

const FACTS: ConditionFacts = {
  now: Date.parse("2026-11-11T10:30:00+08:00"),
  timezone: "Asia/Shanghai",
  event: {
    type: "orderCompleted",
    source: "shop",
    occurredAt: Date.parse("2026-11-11T10:29:58+08:00"),
    payload: {
      orderId: "o-1234-3",
      amount: "128.50",
      channel: "app",
      items: [
        { sku: "h1", category: "hotel", qty: 1, price: "99.00" },
        { sku: "b1", category: "book", qty: 2, price: "14.75" },
      ],
    },
  },
  user: { id: "u1", groups: ["vip"], attributes: { rank: 3, city: "Shanghai", registeredAt: "2026-11-01T00:00:00+08:00" } },
  participations: { "*:week": 2 },
};

function leavesOf(n: TreeNode): Extract<TreeNode, { kind: "leaf" }>[] {
  if (n.kind === "leaf") return [n];
  if (n.kind === "not") return leavesOf(n.child);
  return n.children.flatMap(leavesOf);
}

/** Runs `once` for SECONDS and answers calls per second. */
function perSecond(once: () => boolean): number {
  let sink = 0;
  for (let i = 0; i < 20_000; i++) if (once()) sink++; // warm-up: let the JIT settle first
  let calls = 0;
  const start = performance.now();
  const until = start + SECONDS * 1000;
  let now = start;
  while (now < until) {
    for (let i = 0; i < 1000; i++) if (once()) sink++;
    calls += 1000;
    now = performance.now();
  }
  if (sink < 0) console.log(sink); // keeps the results alive
  return calls / ((now - start) / 1000);
}

export function conditionFigures(say: (s: string) => void): boolean {
  const compiled = compileTree(RAW, { timezone: "Asia/Shanghai", taskIds: [], pointPrograms: [], identityTypes: {}, unavailable: {} });
  if ("issues" in compiled) throw new Error(`the bench tree does not compile: ${JSON.stringify(compiled.issues)}`);
  const tree: ConditionTree = compiled.tree;
  const leaves = leavesOf(tree.root);
  if (leaves.length !== 50) throw new Error(`the bench tree has ${leaves.length} leaves, not 50`);
  const bare = perSecond(() => {
    let passed = 0;
    for (const l of leaves) if (l.def.evaluate(FACTS, l.args).pass) passed++;
    return passed > 25;
  });
  const trees = perSecond(() => evaluate(tree, FACTS).pass);
  const k = (n: number) => `${Math.round(n).toLocaleString("en-US")}/s`;
  say(
    `condition tree, 50 leaves over prefetched facts (Node ${process.version}, one core): ${k(trees)} evaluations with the whole explanation; ` +
      `baseline, the same 50 checks called directly: ${k(bare)} (tree/bare ${(trees / bare).toFixed(2)}; goal ≥ 100,000/s)`,
  );
  return trees >= 100_000;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  if (!conditionFigures(console.log)) process.exitCode = 1;
}
