/**
 * Previews: POST /v1/activities/{activityId}/preview (the signed-in user) and POST /v1/admin/activities/{activityId}/preview
 * (an operator, for any user) answer what a task would do now, from read-only peeks (src/engine/preview.ts). A task
 * route with `?dry=true` answers the same. Previews have their own route rate limit, `preview`.
 */
import { refuseClaimsActivity } from "../benefits/claims";
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { requireUser, signedInUser } from "../auth/require-user";
import { activeConfig } from "../config/store";
import { own } from "../config/compiled";
import { previewTask, type TaskPreview } from "../engine/preview";
import type { User } from "../engine/run";
import { AppError } from "../errors";
import { IdSchema, type AppEnv } from "../http";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { vars } from "../platform/vars";
import { enforceRateLimits } from "../rate-limit/enforce";
import type { RateLimitRule } from "../rate-limit/rule";

/** The previews' limit when ROUTE_RATE_LIMITS names none: a page that previews on every keystroke stays bounded. */
const DEFAULT_PREVIEW_LIMITS: RateLimitRule[] = [{ requests: 60, windowSeconds: 60, by: "user" }];

/** Counts a preview of `user` (a task's, or an event's dry run) against the previews' limit: 429 when over. */
export function enforcePreviewLimit(c: Context<AppEnv>, user: User | null): Promise<void> {
  return enforceRateLimits(c, "route:preview", vars(c.env).ROUTE_RATE_LIMITS?.preview ?? DEFAULT_PREVIEW_LIMITS, user);
}

const Outcome = z
  .object({ amount: z.number().openapi({ description: "Face value (minor units, points, chances, a prize's value)" }), probability: z.number() })
  .catchall(z.unknown())
  .openapi({ description: "One possible outcome; `probability` includes the tree's chance of choosing the reward (a range: `amount` to `max`)" });

export const RewardPreviewSchema = z
  .object({
    node: z.string().openapi({ example: "all/1/oneOf/0" }),
    type: z.string().openapi({ example: "lottery" }),
    eligible: z.boolean().openapi({ description: "False when a guard (`when:`) on the way to it does not hold" }),
    available: z.boolean(),
    reason: z
      .enum([
        "SOLD_OUT",
        "BUDGET",
        "LIMIT",
        "NO_CHANCES",
        "NOT_RELEASED",
        "NOT_IN_GROUP",
        "CAPPED",
        "CLOSED",
        "NOT_OPEN",
        "DAILY_CAP",
        "NO_AMOUNT",
        "IDENTITY_CONFLICT",
        "PRECONDITION_FAILED",
      ])
      .optional()
      .openapi({ description: "Why it is not available" }),
    nextReleaseAt: z.iso.datetime().nullable().optional().openapi({ description: "With NOT_RELEASED: when the next prize is released" }),
    chosen: z.number().openapi({ description: "The probability the tree would choose this reward now" }),
    outcomes: z.array(Outcome),
  })
  .openapi("RewardPreview");

export const TaskPreviewSchema = z
  .object({
    ok: z.literal(true),
    dry: z.literal(true),
    requestId: z.string(),
    activityId: z.string(),
    taskId: z.string(),
    userId: z.string().nullable(),
    wouldRun: z.boolean().openapi({ description: "Whether a real run now would pass its validators, conditions and limits" }),
    refusal: z.object({ code: z.string(), message: z.string() }).optional().openapi({ description: "What a real run would be refused with" }),
    conditions: z
      .object({
        pass: z.boolean(),
        gaps: z.array(z.string()).openapi({ example: ["./0 (event): 20.00 more", "./1: 1 of 2 satisfied"] }),
        explanation: z
          .record(z.string(), z.unknown())
          .openapi({ description: "Every node of `when:` with its result; leaves with actual and expected" }),
      })
      .optional(),
    rewards: z.array(RewardPreviewSchema),
    segments: z
      .array(
        z.object({
          node: z.string().openapi({ example: "bySegment" }),
          matched: z
            .string()
            .nullable()
            .optional()
            .openapi({ description: "The segment that matched; null: the default branch; absent: none matched" }),
          checks: z.array(
            z.object({
              segment: z.string(),
              kind: z.enum(["rule", "static", "external"]),
              priority: z.number().int(),
              member: z.boolean(),
              source: z.enum(["rule", "list", "service", "cache", "fallback"]),
              version: z.string().nullable().optional().openapi({ description: "A static segment's list version (null: none uploaded)" }),
            }),
          ),
          by: z.enum(["weighted", "sticky", "external"]).optional(),
          rights: z.array(z.object({ id: z.string(), node: z.string(), weight: z.number(), available: z.boolean(), chosen: z.number() })),
        }),
      )
      .optional()
      .openapi({ description: "Each `bySegment` node: the segments checked by priority up to the first match, and its rights' chances" }),
  })
  .openapi("TaskPreview");

const Body = z
  .object({ taskId: IdSchema, params: z.record(z.string(), z.unknown()).default({}) })
  .strict()
  .openapi("PreviewRequest");
const AdminBody = Body.extend({
  userId: z.string().min(1).max(200),
  groups: z.array(z.string().min(1)).default([]).openapi({ description: "The user's groups (a token carries them for the user's own preview)" }),
})
  .strict()
  .openapi("AdminPreviewRequest");

const limited = { rateLimited: true };
const PREVIEW_ERRORS = {
  ...BODY_ERRORS,
  INVALID_PARAMS: "a malformed body, or a request rule of the task failed",
  NOT_FOUND: "unknown activity or task",
  RATE_LIMITED: "over ROUTE_RATE_LIMITS' `preview` (60 a minute per user unless set)",
  ...ALWAYS,
} as const;

const userRoute = createRoute({
  method: "post",
  path: "/v1/activities/{activityId}/preview",
  operationId: "previewTask",
  tags: ["Tasks"],
  summary: "What a task would give the signed-in user now, without running it",
  description:
    "Runs the task's pipeline read-only: request rules, validators and `when:` as a real run, then read-only peeks at " +
    "the user's limits and chances and at each reward's stock, budget and pool. Nothing is reserved, drawn, locked or " +
    "recorded. Random rewards are shown as their distribution. The same as the task route with `?dry=true`.",
  security: [{ bearer: [] }],
  request: { params: z.object({ activityId: IdSchema }), body: { content: { "application/json": { schema: Body } }, required: true } },
  responses: {
    200: success(TaskPreviewSchema, "What a run would do now", limited),
    ...errorResponses({ ...PREVIEW_ERRORS, UNAUTHENTICATED: "no token, or a malformed, expired or forged one" }, limited),
  },
});

const adminRoute = createRoute({
  method: "post",
  path: "/v1/admin/activities/{activityId}/preview",
  operationId: "previewTaskForUser",
  tags: ["Admin"],
  summary: "What a task would give any user now, without running it",
  security: [{ operator: [] }],
  request: { params: z.object({ activityId: IdSchema }), body: { content: { "application/json": { schema: AdminBody } }, required: true } },
  responses: {
    200: success(TaskPreviewSchema, "What a run would do now for that user", limited),
    ...errorResponses({ ...PREVIEW_ERRORS, UNAUTHENTICATED: "missing or wrong operator token" }, limited),
  },
});

/** A preview for `user`, rate limited as previews are; params go where the task's method reads them. */
export async function answerPreview(
  c: Context<AppEnv>,
  user: User | null,
  activityId: string,
  taskId: string,
  params: { query: Record<string, string>; body: Record<string, unknown> },
  method?: string,
): Promise<TaskPreview> {
  refuseClaimsActivity(activityId);
  await enforcePreviewLimit(c, user);
  const config = await activeConfig(c.env);
  const activity = config.activities.get(activityId);
  const task = activity && own(activity.tasks, taskId);
  if (!task) throw new AppError("NOT_FOUND", activity ? `activity '${activityId}' has no task '${taskId}'` : `no activity '${activityId}'`);
  return previewTask({
    requestId: c.get("requestId"),
    now: c.get("now"),
    env: c.env,
    ctx: c.executionCtx,
    config,
    method: method ?? task.method,
    activityId,
    taskId,
    query: params.query,
    body: params.body,
    user,
    // An activity code is judged (never used) as the run would judge it.
    client: { activityCode: c.req.header("x-activity-code"), deviceId: c.req.header("x-device-id") },
  });
}

/** A preview's params as the task reads them: a GET task's from the query (as strings), a POST task's from the body. */
async function asTaskParams(c: Context<AppEnv>, activityId: string, taskId: string, params: Record<string, unknown>) {
  const task = own((await activeConfig(c.env)).activities.get(activityId)?.tasks ?? {}, taskId);
  if (task?.method !== "GET") return { query: {}, body: params };
  return { query: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])), body: {} };
}

export function registerPreview(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/activities/:activityId/preview", requireUser("sign in to preview a task"));
  app.openapi(userRoute, async (c) => {
    const { activityId } = c.req.valid("param");
    const { taskId, params } = c.req.valid("json");
    const preview = await answerPreview(c, signedInUser(c), activityId, taskId, await asTaskParams(c, activityId, taskId, params));
    return c.json(preview, 200);
  });
}

/** The operator's preview: registered behind the admin routes' operator check. */
export function registerAdminPreview(app: OpenAPIHono<AppEnv>) {
  app.openapi(adminRoute, async (c) => {
    const { activityId } = c.req.valid("param");
    const { taskId, params, userId, groups } = c.req.valid("json");
    const preview = await answerPreview(c, { id: userId, groups }, activityId, taskId, await asTaskParams(c, activityId, taskId, params));
    return c.json(preview, 200);
  });
}
