/**
 * The intake of queued runs (`intake: queue`): what a grab or a task run checks before it takes a place in the queue
 * (the request itself; everything about stored state is decided by the run), then its ticket and message.
 */
import type { CompiledConfig } from "../config/compiled";
import { checkRequestRules, requestedTask } from "../engine/pipeline";
import type { RunClient, User } from "../engine/run";
import type { Env } from "../env";
import { AppError } from "../errors";
import type { SaleDefinition } from "../sales/sale-definition";
import { openTicket } from "./tickets";

/** The request as it came in: its id, its time (the run is decided as of it) and its fingerprint (method, URL, body). */
export interface IntakeRequest {
  requestId: string;
  now: number;
  fingerprint: string;
}

/** Queues a grab of a sale for the buyer; the ticket's id. */
export function queueGrab(env: Env, def: SaleDefinition, user: User, intake: IntakeRequest): Promise<string> {
  return openTicket(env, user.id, intake.fingerprint, {
    kind: "grab",
    saleId: def.id,
    userId: user.id,
    now: intake.now,
    requestId: intake.requestId,
  });
}

/**
 * Queues a task run, once the request is one the task takes: a known task and method, and its request rules met
 * (pure checks, answered at once rather than after a wait in the queue). A ticket is kept in its user's account, so
 * the run needs a user (config refuses a queued task without `login`).
 */
export function queueTaskRun(
  env: Env,
  req: {
    config: CompiledConfig;
    activityId: string;
    taskId: string;
    method: string;
    query: Record<string, string>;
    body: Record<string, unknown>;
    client?: RunClient;
  },
  user: User | null,
  intake: IntakeRequest,
): Promise<string> {
  const { activity, task } = requestedTask(req.config, req.activityId, req.taskId, req.method);
  checkRequestRules(task, req.query, req.body);
  if (!user) {
    const login = task.validators.find((v) => v.def.code === "login")?.args as { message?: string } | undefined;
    throw new AppError("UNAUTHENTICATED", login?.message ?? "Sign in to take part");
  }
  return openTicket(env, user.id, intake.fingerprint, {
    kind: "task",
    activityId: activity.id,
    taskId: task.id,
    method: req.method,
    user,
    query: req.query,
    body: req.body,
    client: req.client,
    now: intake.now,
    requestId: intake.requestId,
  });
}
