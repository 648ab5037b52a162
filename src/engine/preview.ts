/**
 * A task previewed: the run's pipeline up to the commit, read-only. Request rules, window, validators and `when:` run
 * as in a real run (validators only plan); instead of the commit, the plan is checked against read-only peeks at the
 * user's account (limits, chances, points) and the shared counters (caps), and every reward of the tree is previewed.
 * Nothing is reserved, drawn, locked, recorded or stored, so a preview can be asked as often as the rate limit allows.
 */
import { userAccount } from "../../durable-objects/support/stubs";
import { settleChances } from "../accounts/chances";
import type { ChanceChange, CounterChange } from "../accounts/account-plan";
import { counterCovers } from "../counters/counters";
import { AppError, type ErrorCode } from "../errors";
import type { Rejection, Unavailability } from "./define";
import { evaluate, type Explanation } from "./conditions/tree";
import { taskFacts } from "./conditions/facts";
import { checkRequestRules, requestedTask, type TaskRequest } from "./pipeline";
import { TaskRun } from "./run";
import { previewTree, type LeafPreview, type SegmentPreview } from "./reward-tree/preview";

export interface TaskPreview {
  ok: true;
  dry: true;
  requestId: string;
  activityId: string;
  taskId: string;
  userId: string | null;
  /** Whether a real run now would pass its validators, conditions and the user's limits. */
  wouldRun: boolean;
  /** Why not: the refusal a real run would answer. */
  refusal?: { code: ErrorCode; message: string };
  /** The task's `when:`: its result, every node explained, and what is missing ("2 of 3 satisfied", "20.00 more"). */
  conditions?: { pass: boolean; gaps: string[]; explanation: Explanation };
  rewards: LeafPreview[];
  /** Each `bySegment` node on the way: the segments checked, the one matched, and the rights' chances. */
  segments?: SegmentPreview[];
}

/** The preview's reason for a refusal a guard or limit would give. */
const REASONS: Partial<Record<ErrorCode, Unavailability>> = { NOT_ELIGIBLE: "LIMIT", NO_CHANCES: "NO_CHANCES", SOLD_OUT: "SOLD_OUT" };

/** Previews one task for the request's user; throws AppError only where a real run would too before its steps (unknown task, bad params). */
export async function previewTask(req: TaskRequest): Promise<TaskPreview> {
  const { activity, task } = requestedTask(req.config, req.activityId, req.taskId, req.method, true);
  checkRequestRules(task, req.query, req.body);
  const params = { ...req.query, ...req.body };
  const run = new TaskRun({ ...req, activity, task, params, configVersion: req.config.version, configRevision: req.config.revision });
  let refusal: Rejection | undefined;
  const refuse = (r: Rejection) => {
    refusal ??= r;
  };
  if (req.now < activity.begin || req.now > activity.end) refuse({ code: "OUTSIDE_TIME_WINDOW", message: activity.windowMessage });
  for (const v of task.validators) {
    if (refusal) break;
    if (v.def.skippedByPreview) continue;
    try {
      const rejection = await v.def.check(run, v.args);
      if (rejection) refuse(rejection);
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      refuse({ code: e.code, message: e.message });
    }
  }
  let conditions: TaskPreview["conditions"];
  if (task.when) {
    const { pass, explanation } = evaluate(task.when, await taskFacts(task.when, run));
    conditions = { pass, gaps: gaps(explanation), explanation };
    if (!pass) refuse({ code: "CONDITIONS_NOT_MET", message: "conditions not met" });
  }
  if (!refusal && run.user) {
    const found = await peekPlan(run);
    if (found) refuse(found);
  }
  const blocked = refusal ? (REASONS[refusal.code] ?? "LIMIT") : undefined;
  const segments: SegmentPreview[] = [];
  const rewards = run.user ? await previewTree(run, task.rewardTree, blocked, segments) : [];
  return {
    ok: true,
    dry: true,
    requestId: req.requestId,
    activityId: activity.id,
    taskId: task.id,
    userId: run.user?.id ?? null,
    wouldRun: refusal === undefined,
    ...(refusal && { refusal }),
    ...(conditions && { conditions }),
    rewards,
    ...(segments.length > 0 && { segments }),
  };
}

/**
 * The first refusal the run's plan would meet at its commit, read only: the user's counters (limits, chance spends)
 * applied in plan order as the account would, point redeems against the spendable balance, and the caps of everyone
 * together against what their counters have left.
 */
async function peekPlan(run: TaskRun): Promise<Rejection | undefined> {
  const user = run.requireUser();
  const ns = run.activity.namespace;
  const account = userAccount(run.init.env, user.id);
  const changes = run.plan.counters.filter((c) => !("grantId" in c && c.grantId !== undefined));
  const prefixes = changes.flatMap((c) => ("type" in c ? [c.allowance.key, c.earnedPrefix] : [c.key]));
  const [stored, shared, balances] = await Promise.all([
    prefixes.length > 0 ? account.counters(ns, prefixes) : Promise.resolve({} as Record<string, number>),
    Promise.all(run.plan.shared.map((s) => counterCovers(run.init.env, s.counter, user.id, s.units))),
    Promise.all(run.plan.points.flatMap((p) => (p.kind === "redeem" ? [account.pointBalances(p.program.id, run.now)] : []))),
  ]);
  const values = new Map(Object.entries(stored));
  for (const c of changes) {
    if ("type" in c) {
      const chance = c as ChanceChange;
      const earned = [...values].filter(([k]) => k.startsWith(chance.earnedPrefix)).map(([key, value]) => ({ key, value }));
      const settled = settleChances(chance, values.get(chance.allowance.key), earned);
      if (!settled.ok) return chance.rejection ?? { code: "NO_CHANCES", message: "no chances left" };
      for (const [k, v] of settled.writes) values.set(k, v);
    } else {
      const counter = c as CounterChange;
      const next = (values.get(counter.key) ?? counter.initial ?? 0) + counter.delta;
      if ((counter.cap != null && next > counter.cap) || (counter.floor != null && next < counter.floor)) {
        return counter.rejection ?? { code: "NOT_ELIGIBLE", message: "a limit was reached" };
      }
      values.set(counter.key, next);
    }
  }
  const redeems = run.plan.points.filter((p) => p.kind === "redeem");
  for (const [i, r] of redeems.entries()) if ((balances[i]?.active ?? 0) < r.amount) return r.rejection;
  // A participants cap already holding this user lets the user through, as the commit would.
  for (const [i, s] of run.plan.shared.entries()) {
    if (shared[i]) continue;
    if (s.once !== undefined && ((await account.counters(ns, [s.once]))[s.once] ?? 0) >= 1) continue;
    return s.rejection;
  }
  return undefined;
}

/** What a failing condition tree is missing: each `atLeast`'s "n of m satisfied", and how far a failing number is. */
export function gaps(e: Explanation): string[] {
  if (e.pass) return [];
  if (e.node === "leaf") {
    const expected = e.expected as { op?: string; value?: unknown; n?: unknown } | null;
    const want = Number(expected?.value ?? expected?.n);
    const have = Number(e.actual);
    if (!expected?.op || !Number.isFinite(want) || !Number.isFinite(have) || typeof e.actual === "boolean") return [];
    // Money-like values (any fraction) show two decimals at least: an amount of 80.25 against 100 is "19.75 more".
    const written = Math.max(...[want, have].map((v) => String(v).split(".")[1]?.length ?? 0));
    const decimals = written === 0 ? 0 : Math.max(2, written);
    const by = (x: number) => Math.abs(x).toFixed(decimals);
    if (expected.op === "gte" || expected.op === "gt") return [`${e.id} (${e.code}): ${by(want - have)} more`];
    if (expected.op === "lte" || expected.op === "lt") return [`${e.id} (${e.code}): ${by(have - want)} less`];
    return [];
  }
  if (e.node === "not") return [];
  const below = e.children.flatMap(gaps);
  return e.node === "atLeast" ? [`${e.id}: ${e.gap}`, ...below] : below;
}
