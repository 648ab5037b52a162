/**
 * The task pipeline, in the seed's order: request rules → validators → command → reward → afterCommand → commit.
 * The first failing step answers with its code and configured message. Everything a run writes is committed in
 * one D1 batch (a transaction), so a refused run leaves nothing behind.
 */
import type { DrizzleD1Database } from "drizzle-orm/d1";
import type { BatchItem } from "drizzle-orm/batch";
import { counterUpsert, findViolation, isBoundsViolation } from "../accounts/counters";
import { isLockConflict, lockStatement } from "../accounts/locks";
import { recordRequest } from "../accounts/request-records";
import { participations } from "../db/schema";
import type { Env, RequestRecordMessage } from "../env";
import { AppError } from "../errors";
import { satisfies } from "../config/request-rules";
import type { CompiledConfig } from "../config/compiled";
import type { RewardOutcome } from "./define";
import { TaskRun, type User } from "./run";

export interface TaskRequest {
  requestId: string;
  now: number;
  env: Env;
  ctx: { waitUntil(promise: Promise<unknown>): void };
  db: DrizzleD1Database;
  config: CompiledConfig;
  method: string;
  activityId: string;
  taskId: string;
  query: Record<string, string>;
  body: Record<string, unknown>;
  user: User | null;
  /** Statement that stores the success answer for Idempotency-Key replays, committed with the run. */
  completeIdempotency?: (body: string) => BatchItem<"sqlite">;
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
  const task = activity.tasks[req.taskId];
  if (!task) throw new AppError("NOT_FOUND", `activity '${activity.id}' has no task '${req.taskId}'`);
  if (req.method !== task.method) {
    throw new AppError("METHOD_NOT_ALLOWED", `task '${task.id}' takes ${task.method}`, { Allow: task.method });
  }

  // 1. Request rules.
  for (const rule of task.rules) {
    const value = rule.source === "query" ? req.query[rule.field] : req.body[rule.field];
    if (!satisfies(rule.checks, value)) throw new AppError("INVALID_PARAMS", rule.message);
  }

  const params = { ...req.query, ...req.body };
  const run = new TaskRun({ ...req, activity, task, params, configVersion: req.config.version });
  let outcome = "OK";
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
    await commit(run, req.completeIdempotency?.(JSON.stringify(result)));
    await Promise.all(run.plan.afterCommit.map((f) => f().catch((e) => logLate(req.requestId, e))));
    return result;
  } catch (e) {
    outcome = e instanceof AppError ? e.code : "INTERNAL";
    throw e;
  } finally {
    const record: RequestRecordMessage = {
      id: req.requestId,
      namespace: activity.namespace,
      activityId: activity.id,
      taskId: task.id,
      userId: req.user?.id ?? null,
      configVersion: req.config.version,
      outcome,
      params: JSON.stringify(params),
      createdAt: req.now,
    };
    recordRequest(req.env, req.ctx, record);
  }
}

async function commit(run: TaskRun, idempotency: BatchItem<"sqlite"> | undefined) {
  const { plan, db } = run;
  const user = run.user;
  const committedAt = Date.now();
  const items: BatchItem<"sqlite">[] = [
    ...plan.locks.map((l) => lockStatement(db, l.key, run.init.requestId, run.startedAt, committedAt)),
    ...plan.counters.map((c) => counterUpsert(db, c, run.now)),
    ...(user
      ? [
          db.insert(participations).values({
            id: run.participationId,
            requestId: run.init.requestId,
            namespace: run.activity.namespace,
            activityId: run.activity.id,
            taskId: run.task.id,
            userId: user.id,
            period: run.period("day"),
            createdAt: run.now,
          }),
        ]
      : []),
    ...plan.writes,
    ...(idempotency ? [idempotency] : []),
  ];
  if (items.length === 0) return;
  try {
    await db.batch(items as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]);
  } catch (e) {
    if (isLockConflict(e) && plan.locks[0]) throw new AppError(plan.locks[0].rejection.code, plan.locks[0].rejection.message);
    if (!isBoundsViolation(e)) throw e;
    const rejection = (await findViolation(db, plan.counters)) ?? plan.counters.find((c) => c.rejection)?.rejection;
    if (!rejection) throw e;
    throw new AppError(rejection.code, rejection.message);
  }
}

function logLate(requestId: string, e: unknown) {
  console.error(JSON.stringify({ message: "post-commit step failed; the outbox sweep will retry", requestId, error: String(e) }));
}
