/**
 * The task pipeline, in a fixed order: request rules → validators → conditions (`when:`) → command → reward →
 * afterCommand → commit.
 * The first failing step answers with its code and configured message. Checks on stored state are made at commit:
 * the units of shared counters the run needs (stock, budget, an activity-wide cap) are reserved on their shards
 * first, then the user's account checks the user's own state (lock, limits, chances) in the same transaction that
 * writes everything and records which reservations it used; the reservations are confirmed after. A refused run
 * leaves nothing behind: its reservations go back at once, or at their deadline if the worker died first.
 */
import { settleRewards } from "../accounts/chances";
import { settlePointRewards } from "../points/changes";
import { userAccount } from "../../durable-objects/support/stubs";
import { confirm as confirmUnits, release as releaseUnits, reserve } from "../counters/counters";
import type { SharedReservation } from "./run";
import { recordOutsideCommit, requestRecord } from "../accounts/request-records";
import type { AccountPlan } from "../accounts/account-plan";
import type { Env } from "../env";
import type { RequestRecordMessage } from "../records/messages";
import { AppError, jsonPointer } from "../errors";
import { satisfies } from "../config/request-rules";
import { own, type CompiledConfig, type CompiledTask } from "../config/compiled";
import type { RewardOutcome } from "./define";
import { TaskRun, type RunClient, type User } from "./run";
import { log } from "../platform/log";
import { evaluate, whyNot } from "./conditions/tree";
import { countParticipation, taskInputs } from "./conditions/facts";
import { progressChanges, progressPlan } from "./conditions/progress";
import { emittedEvent } from "../events/emit";
import { grantTree } from "./reward-tree/grant";
import type { EntitlementRun } from "../benefits/entitlements";

export interface TaskRequest {
  requestId: string;
  now: number;
  env: Env;
  ctx: { waitUntil(promise: Promise<unknown>): void };
  config: CompiledConfig;
  method: string;
  activityId: string;
  taskId: string;
  query: Record<string, string>;
  body: Record<string, unknown>;
  user: User | null;
  /**
   * The Idempotency-Key whose answer is stored with the run's commit, and the account namespace it lives in: the
   * activity's for a client's key, `tickets` for a queued run (src/intake).
   */
  idempotency?: { namespace: string; key: string };
  /** Crash tests only (ALLOW_FAULT_INJECTION): the step after which the run fails as if the worker died. */
  fault?: Fault;
  /** The business event this run answers, for a task run by events (src/events/process.ts). */
  event?: RunEvent;
  /** The service key whose request made this run (an event's sender), recorded with it; absent for a consumer's own run. */
  keyId?: string | null;
  /** What the client's request carried besides its params (its activity code, its device). */
  client?: RunClient;
  /** A benefit claim's or issuance's entitlement, committed with the run (src/benefits/entitlements.ts). */
  entitlement?: EntitlementRun;
}

/** How records name an event: `<source>/<eventId>`. */
export const eventRef = (e: { source: string; eventId: string }) => `${e.source}/${e.eventId}`;

/** The event behind a triggered run: the run is linked to it in its request record. */
export interface RunEvent {
  source: string;
  eventId: string;
  type: string;
  occurredAt: number;
  payload: Record<string, unknown>;
  /** For an event whose type counts as an order: the user's completed orders before it (src/events/order-history.ts). */
  ordersBefore?: number;
}

/** Where a crash test makes a run fail: after its shared units were reserved, or after the user's commit. */
export type Fault = "after-reserve" | "after-commit";

export interface TaskSuccess {
  ok: true;
  requestId: string;
  activityId: string;
  taskId: string;
  rewards: RewardOutcome[];
}

/** The activity and task a request names, or its refusal: an unknown activity or task, or the other method. */
export function requestedTask(config: CompiledConfig, activityId: string, taskId: string, method: string, byEvent = false) {
  const activity = config.activities.get(activityId);
  if (!activity) throw new AppError("NOT_FOUND", `no activity '${activityId}'`);
  const task = own(activity.tasks, taskId);
  if (!task) throw new AppError("NOT_FOUND", `activity '${activity.id}' has no task '${taskId}'`);
  // A trigger grants on a business system's word (its event), never on a client's request.
  if (task.on && !byEvent) throw new AppError("NOT_FOUND", `task '${task.id}' runs on events (${task.on.join(", ")}), not on requests`);
  if (method !== task.method) {
    throw new AppError("METHOD_NOT_ALLOWED", `task '${task.id}' takes ${task.method}`, { Allow: task.method });
  }
  return { activity, task };
}

/**
 * 1. Request rules: the first failing rule's configured message answers; details list every failing field. Pure, so
 * a queued run's intake checks them too, before it takes a place in the queue.
 */
export function checkRequestRules(task: CompiledTask, query: Record<string, string>, body: Record<string, unknown>) {
  const failing = task.rules.filter((rule) => {
    const params = rule.source === "query" ? query : body;
    return !satisfies(rule.checks, Object.hasOwn(params, rule.field) ? params[rule.field] : undefined);
  });
  if (failing.length > 0) {
    const details = failing.map((rule) => ({ pointer: jsonPointer([rule.field]), message: rule.message }));
    throw new AppError("INVALID_PARAMS", failing[0]!.message, {}, details);
  }
}

/** Runs one task for one request; throws AppError for every refusal. */
export async function runTask(req: TaskRequest): Promise<TaskSuccess> {
  const { activity, task } = requestedTask(req.config, req.activityId, req.taskId, req.method, req.event !== undefined);
  checkRequestRules(task, req.query, req.body);

  const params = { ...req.query, ...req.body };
  const run = new TaskRun({ ...req, activity, task, params, configVersion: req.config.version, configRevision: req.config.revision });
  const record = requestRecord({
    id: req.requestId,
    namespace: activity.namespace,
    activityId: activity.id,
    taskId: task.id,
    userId: req.user?.id ?? null,
    configVersion: req.config.version,
    outcome: "OK",
    params: JSON.stringify(params),
    createdAt: req.now,
    eventRef: req.event ? eventRef(req.event) : null,
    keyId: req.keyId ?? null,
  });
  // Whether the user's account answered the commit: it then holds the run's record, with the outcome it gave.
  let committed = false;
  try {
    if (req.now < activity.begin || req.now > activity.end) throw new AppError("OUTSIDE_TIME_WINDOW", activity.windowMessage);

    // 2. Validators, in the configured order.
    for (const v of task.validators) {
      const rejection = await v.def.check(run, v.args);
      if (run.riskDecision) record.risk = JSON.stringify(run.riskDecision);
      if (rejection) throw new AppError(rejection.code, rejection.message);
    }
    // The task's conditions, over facts fetched once; a refusal explains every node.
    // Progress of activity-scoped atLeast nodes commits with the run, or alone when the tree fails (see progress.ts).
    if (task.when) {
      const { facts, satisfiedBefore } = await taskInputs(task.when, run);
      const evaluation = evaluate(task.when, facts, { satisfiedBefore });
      const progress = run.user ? progressChanges(task.id, evaluation, satisfiedBefore) : [];
      if (!evaluation.pass) {
        if (progress.length > 0) await userAccount(req.env, run.user!.id).commit(progressPlan(run, run.user!.id, progress));
        throw new AppError("CONDITIONS_NOT_MET", conditionsNotMet(whyNot(evaluation.explanation)), {}, { explanation: evaluation.explanation });
      }
      run.plan.counters.push(...progress);
    }
    // 3. Command, 4. rewards, 5. afterCommand: each adds to the one commit below.
    for (const c of task.commands) await c.def.run(run, c.args);
    await grantTree(run, task.rewardTree);
    for (const c of task.afterCommands) await c.def.run(run, c.args);

    const result: TaskSuccess = { ok: true, requestId: req.requestId, activityId: activity.id, taskId: task.id, rewards: run.rewards };
    committed = await commit(run, req, result, record);
    for (const done of run.plan.afterCommit) done();
    return result;
  } catch (e) {
    // A refusal the account answered was recorded there; a run "killed" by a crash test records nothing more.
    if (e instanceof AccountRefusal || e instanceof InjectedFault) committed = true;
    record.outcome = e instanceof AppError ? e.code : "INTERNAL";
    // Only a definite refusal gives back what was taken: after an unexpected error the commit may have landed,
    // and a prize kept by mistake goes back at its claim deadline anyway.
    const compensations = (e instanceof AppError ? run.plan.compensations : []).map((undo) =>
      undo().catch((err) => log.error("compensation failed", { requestId: req.requestId, error: String(err) })),
    );
    await Promise.all(compensations);
    throw e;
  } finally {
    if (!committed) recordOutsideCommit(req.env, req.ctx, record);
  }
}

/** The refusal's message: the first few failing conditions, briefly (the details hold the whole explanation). */
function conditionsNotMet(failing: string[]): string {
  const shown = failing.slice(0, 3).join("; ");
  return `conditions not met: ${shown}${failing.length > 3 ? `; and ${failing.length - 3} more` : ""}`;
}

/** A refusal answered by the user's account at commit (it recorded the run with this outcome). */
class AccountRefusal extends AppError {}

/** A crash test's failure: the run stops as if its worker died there (nothing after it happens, not even its record). */
class InjectedFault extends Error {}

/** A shared reservation the run holds: its id and the shard that holds it. */
interface Held {
  s: SharedReservation;
  id: string;
  shard: number;
}

/**
 * 6. Commit: reserve the shared units, then the participation, every planned change and record (the run's request
 * record among them) in the user's account's one transaction, then confirm the units. False when nothing was sent
 * to the account.
 */
async function commit(run: TaskRun, req: TaskRequest, result: TaskSuccess, request: RequestRecordMessage): Promise<boolean> {
  const user = run.user;
  // Anonymous runs (no `login`) change nothing: every component that writes needs a user.
  if (!user) return false;
  const env = run.init.env;
  run.plan.records.participations.push({
    id: run.participationId,
    requestId: run.init.requestId,
    namespace: run.activity.namespace,
    activityId: run.activity.id,
    taskId: run.task.id,
    userId: user.id,
    period: run.period("day"),
    createdAt: run.now,
  });
  countParticipation(run);
  // The event the run emits commits with it, and leaves through the account's outbox (see src/events/emit.ts).
  const emitted = emittedEvent(req.config, run.task, { requestId: req.requestId, userId: user.id, now: run.now, keyId: req.keyId ?? null });
  if (emitted) run.plan.records.events = [emitted];
  const { held, requirements } = await reserveShared(run, user.id);
  if (req.fault === "after-reserve") throw new InjectedFault("fault injected after the reservations");
  const plan: AccountPlan = {
    namespace: run.activity.namespace,
    userId: user.id,
    requestId: run.init.requestId,
    startedAt: run.startedAt,
    committedAt: Date.now(),
    locks: run.plan.locks,
    counters: run.plan.counters,
    requirements,
    reservations: [...held.map((h) => ({ id: h.id, once: h.s.once })), ...run.plan.heldElsewhere.map((id) => ({ id }))],
    records: run.plan.records,
    idempotency: req.idempotency && { ...req.idempotency, status: 200, body: JSON.stringify(result) },
    request,
    points: run.plan.points,
    identities: run.plan.identities,
    activityCodes: run.plan.activityCodes,
    ...(req.entitlement && { entitlement: req.entitlement }),
  };
  // If this call fails without an answer, the commit may or may not have landed: the reservations stay held, and at
  // their deadline each counter asks the account, which answers what happened (and forbids it later if nothing did).
  const answer = await userAccount(env, user.id).commit(plan);
  if (!answer.ok) {
    // Definitely not used: back at once (a release that fails is settled at the deadline the same way).
    settleUnits(
      run,
      held,
      held.map((h) => h.id),
    );
    throw new AccountRefusal(answer.rejection.code, answer.rejection.message);
  }
  if (req.fault === "after-commit") throw new InjectedFault("fault injected after the commit");
  settleUnits(run, held, answer.unused ?? []);
  if (answer.earned) result.rewards = settlePointRewards(result.rewards, answer.earned) as TaskSuccess["rewards"];
  if (answer.settled) {
    const caps = new Map(run.plan.counters.flatMap((c) => ("type" in c && c.grantId !== undefined ? [[c.grantId, c.max] as const] : [])));
    result.rewards = settleRewards(result.rewards, answer.settled, (id) => caps.get(id) ?? null) as TaskSuccess["rewards"];
  }
  return true;
}

/**
 * Reserves every shared unit the run needs, all at once. The first refusal in pipeline order answers the run, and
 * what was reserved goes back. A participants cap that is full still lets a user it already counted through: the
 * commit then requires the user's marker instead.
 */
async function reserveShared(run: TaskRun, userId: string) {
  const env = run.init.env;
  // Units the reward tree already reserved (to know before the commit whether it could give them) are only used here.
  const asked = run.plan.shared.flatMap((s, i) => (s.held ? [] : [{ s, id: `${run.init.requestId}.${i}` }]));
  const answers = await Promise.allSettled(
    asked.map(({ s, id }) => reserve(env, s.counter, { reservationId: id, units: s.units, userId, now: run.now })),
  );
  const held: Held[] = run.plan.shared.flatMap((s) => (s.held ? [{ s, ...s.held }] : []));
  const requirements = [...run.plan.requirements];
  let refusal: unknown;
  answers.forEach((a, i) => {
    const { s, id } = asked[i]!;
    if (a.status === "fulfilled" && a.value.outcome === "reserved") held.push({ s, id, shard: a.value.shard });
    else if (a.status === "fulfilled" && a.value.outcome === "exhausted" && s.once !== undefined)
      requirements.push({ key: s.once, rejection: s.rejection });
    else if (refusal === undefined) {
      refusal =
        a.status === "rejected"
          ? a.reason
          : a.value.outcome === "exhausted"
            ? new AppError(s.rejection.code, s.rejection.message)
            : new AppError("UNAVAILABLE", "busy: please retry shortly", { "retry-after": "1" });
    }
  });
  if (refusal !== undefined) {
    settleUnits(
      run,
      held,
      held.map((h) => h.id),
    );
    throw refusal;
  }
  return { held, requirements };
}

/** After the answer: confirms the units the commit used and releases the others, per counter (a failure is settled at the deadline). */
function settleUnits(run: TaskRun, held: Held[], unused: string[]) {
  const env = run.init.env;
  const byCounter = new Map<string, { s: SharedReservation; used: Held[]; back: Held[] }>();
  for (const h of held) {
    const entry = byCounter.get(h.s.counter.id) ?? { s: h.s, used: [], back: [] };
    (unused.includes(h.id) ? entry.back : entry.used).push(h);
    byCounter.set(h.s.counter.id, entry);
  }
  const work = [...byCounter.values()].flatMap(({ s, used, back }) => [
    used.length > 0 ? confirmUnits(env, s.counter, used) : undefined,
    back.length > 0 ? releaseUnits(env, s.counter, back) : undefined,
  ]);
  const done = Promise.all(work).catch((e: unknown) =>
    log.error("reservations not settled; their deadline will", { requestId: run.init.requestId, error: String(e) }),
  );
  run.init.ctx.waitUntil(done);
}
