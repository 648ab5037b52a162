/**
 * The task pipeline, in a fixed order: request rules → validators → command → reward → afterCommand → commit.
 * The first failing step answers with its code and configured message. Checks on stored state (lock, limits,
 * chances, stock, budget) are made by the activity's account ledger at commit, in pipeline order, in the same
 * transaction that writes everything, so a refused run leaves nothing behind.
 */
import { settleRewards } from "../accounts/chances";
import { ledgerFor } from "../accounts/ledger";
import { recordOutsideCommit, requestRecord } from "../accounts/request-records";
import type { LedgerPlan } from "../accounts/ledger-plan";
import type { Env } from "../env";
import type { RequestRecordMessage } from "../records/messages";
import { AppError, jsonPointer } from "../errors";
import { satisfies } from "../config/request-rules";
import { own, type CompiledConfig } from "../config/compiled";
import type { RewardOutcome } from "./define";
import { TaskRun, type User } from "./run";
import { log } from "../platform/log";

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
  /** The Idempotency-Key whose answer is stored with the run's commit. */
  idempotencyKey?: string;
}

export interface TaskSuccess {
  ok: true;
  requestId: string;
  activityId: string;
  taskId: string;
  rewards: RewardOutcome[];
}

/** Runs one task for one request; throws AppError for every refusal. */
export async function runTask(req: TaskRequest): Promise<TaskSuccess> {
  const activity = req.config.activities.get(req.activityId);
  if (!activity) throw new AppError("NOT_FOUND", `no activity '${req.activityId}'`);
  const task = own(activity.tasks, req.taskId);
  if (!task) throw new AppError("NOT_FOUND", `activity '${activity.id}' has no task '${req.taskId}'`);
  if (req.method !== task.method) {
    throw new AppError("METHOD_NOT_ALLOWED", `task '${task.id}' takes ${task.method}`, { Allow: task.method });
  }

  // 1. Request rules: the first failing rule's configured message answers; details list every failing field.
  const failing = task.rules.filter((rule) => {
    const params = rule.source === "query" ? req.query : req.body;
    return !satisfies(rule.checks, Object.hasOwn(params, rule.field) ? params[rule.field] : undefined);
  });
  if (failing.length > 0) {
    const details = failing.map((rule) => ({ pointer: jsonPointer([rule.field]), message: rule.message }));
    throw new AppError("INVALID_PARAMS", failing[0]!.message, {}, details);
  }

  const params = { ...req.query, ...req.body };
  const run = new TaskRun({ ...req, activity, task, params, configVersion: req.config.version });
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
  });
  // Whether the ledger answered the commit: it then holds the run's record, with the outcome it gave.
  let committed = false;
  try {
    if (req.now < activity.begin || req.now > activity.end) throw new AppError("OUTSIDE_TIME_WINDOW", activity.windowMessage);

    // 2. Validators, in the configured order.
    for (const v of task.validators) {
      const rejection = await v.def.check(run, v.args);
      if (rejection) throw new AppError(rejection.code, rejection.message);
    }
    // 3. Command, 4. rewards, 5. afterCommand: each adds to the one commit below.
    for (const c of task.commands) await c.def.run(run, c.args);
    for (const r of task.rewards) run.rewards.push(await r.def.grant(run, r.args));
    for (const c of task.afterCommands) await c.def.run(run, c.args);

    const result: TaskSuccess = { ok: true, requestId: req.requestId, activityId: activity.id, taskId: task.id, rewards: run.rewards };
    committed = await commit(run, req.idempotencyKey, result, record);
    for (const done of run.plan.afterCommit) done();
    return result;
  } catch (e) {
    if (e instanceof LedgerRefusal) committed = true;
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

/** A refusal answered by the ledger at commit (it recorded the run with this outcome). */
class LedgerRefusal extends AppError {}

/**
 * 6. Commit: the participation, every planned change and record, the run's request record among them, in the
 * ledger's one transaction. False when nothing was sent to the ledger.
 */
async function commit(run: TaskRun, idempotencyKey: string | undefined, result: TaskSuccess, request: RequestRecordMessage): Promise<boolean> {
  const user = run.user;
  // Anonymous runs (no `login`) change nothing: every component that writes needs a user.
  if (!user) return false;
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
  const plan: LedgerPlan = {
    requestId: run.init.requestId,
    startedAt: run.startedAt,
    committedAt: Date.now(),
    locks: run.plan.locks,
    counters: run.plan.counters,
    records: run.plan.records,
    idempotency: idempotencyKey ? { userId: user.id, key: idempotencyKey, status: 200, body: JSON.stringify(result) } : undefined,
    request,
  };
  const answer = await ledgerFor(run.init.env, run.activity.namespace).commit(plan);
  if (!answer.ok) throw new LedgerRefusal(answer.rejection.code, answer.rejection.message);
  if (answer.settled) {
    const caps = new Map(run.plan.counters.flatMap((c) => ("type" in c && c.grantId !== undefined ? [[c.grantId, c.max] as const] : [])));
    result.rewards = settleRewards(result.rewards, answer.settled, (id) => caps.get(id) ?? null) as TaskSuccess["rewards"];
  }
  return true;
}
