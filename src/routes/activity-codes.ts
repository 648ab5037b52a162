/**
 * POST /v1/activities/{activityId}/codes: issues the signed-in user an activity code for one run of a task (after a
 * Turnstile check where the task's `activityCode` guard asks for one). Issuing writes nothing: the code is signed.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { issueActivityCode, MAX_CODE_TTL_SECONDS } from "../activity-codes/activity-code";
import { requireTurnstile, siteverify } from "../activity-codes/turnstile";
import { requireUser, signedInUser } from "../auth/require-user";
import { own } from "../config/compiled";
import { activeConfig } from "../config/store";
import { activityCode } from "../engine/validators/activity-code";
import { AppError } from "../errors";
import { IdSchema, type AppEnv } from "../http";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { vars } from "../platform/vars";
import { enforceRateLimits } from "../rate-limit/enforce";
import type { RateLimitRule } from "../rate-limit/rule";

const PATH = "/v1/activities/{activityId}/codes";

/** Codes a user may get per minute when ROUTE_RATE_LIMITS names none: far above a person's pace, far below a farm's. */
const DEFAULT_CODE_LIMITS: RateLimitRule[] = [{ requests: 30, windowSeconds: 60, by: "user" }];

const fields = {
  task: IdSchema.optional().openapi({ description: "The task the code is for (required, in the body or the query)", example: "grab" }),
  device: z
    .string()
    .min(1)
    .max(128)
    .optional()
    .openapi({ description: "The device the code is bound to (default: the X-Device-Id header; neither: any device)", example: "d-1" }),
  turnstileToken: z
    .string()
    .min(1)
    .max(2048)
    .optional()
    .openapi({ description: "A Cloudflare Turnstile token (the widget's `cf-turnstile-response`), for tasks that ask for one" }),
};

const CodeRequestSchema = z.object(fields).strict().openapi("ActivityCodeRequest");

const CodeAnswerSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    code: z.string().openapi({ description: "Send it as X-Activity-Code with the task's run; it works once", example: "ac1.eyJpZCI6…" }),
    activityId: z.string(),
    taskId: z.string(),
    device: z.string().nullable().openapi({ description: "The device it is bound to (send the same X-Device-Id), or null for any" }),
    expiresAt: z.iso.datetime().openapi({ description: `When it stops working: at most ${MAX_CODE_TTL_SECONDS} s after issue` }),
  })
  .openapi("ActivityCode");

const limited = { rateLimited: true };
const route = createRoute({
  method: "post",
  path: PATH,
  operationId: "issueActivityCode",
  tags: ["Tasks"],
  summary: "Get a single-use activity code for a task run",
  description:
    "Issues a code bound to the user, the activity, the task and the device, valid for the task's `activityCode` " +
    `ttlSeconds (at most ${MAX_CODE_TTL_SECONDS} s). A run of a task guarded by \`activityCode\` sends it as ` +
    "X-Activity-Code and uses it up. Where the task's guard has `turnstile: true`, a Turnstile token must come first; " +
    "it is checked with Turnstile's siteverify. Fields come from the JSON body or the query string.",
  security: [{ bearer: [] }],
  request: {
    params: z.object({ activityId: IdSchema }),
    query: z.object(fields),
    body: { content: { "application/json": { schema: CodeRequestSchema } }, required: false },
  },
  responses: {
    200: success(CodeAnswerSchema, "The code", limited),
    ...errorResponses(
      {
        ...BODY_ERRORS,
        INVALID_PARAMS: "no task named, or a malformed field",
        UNAUTHENTICATED: "no token, or a malformed, expired or forged one",
        NOT_FOUND: "no such activity or task (or the task runs on events, which send no codes)",
        TURNSTILE_REQUIRED: "the task asks for a Turnstile check and no turnstileToken came",
        TURNSTILE_FAILED: "siteverify refused the Turnstile token (invalid, expired or used)",
        TURNSTILE_UNAVAILABLE: "siteverify could not be asked: retry after Retry-After",
        RATE_LIMITED: "over ROUTE_RATE_LIMITS' `activity-code` (default 30 a minute per user)",
        ...ALWAYS,
      },
      limited,
    ),
  },
});

export function registerActivityCodes(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/activities/:activityId/codes", requireUser("sign in to get an activity code"));
  app.openapi(route, async (c) => {
    const user = signedInUser(c);
    await enforceRateLimits(c, "route:activity-code", vars(c.env).ROUTE_RATE_LIMITS?.["activity-code"] ?? DEFAULT_CODE_LIMITS, user);
    const { activityId } = c.req.valid("param");
    const query = c.req.valid("query");
    const body = c.req.valid("json") as z.infer<typeof CodeRequestSchema>;
    const taskId = body.task ?? query.task;
    if (taskId === undefined)
      throw new AppError("INVALID_PARAMS", "task: name the task the code is for", {}, [{ pointer: "/task", message: "required" }]);
    const config = await activeConfig(c.env);
    const activity = config.activities.get(activityId);
    if (!activity) throw new AppError("NOT_FOUND", `no activity '${activityId}'`);
    const task = own(activity.tasks, taskId);
    if (!task || task.on) throw new AppError("NOT_FOUND", `activity '${activityId}' has no task '${taskId}' run on request`);
    // A task without the guard (a risk engine's challenge may still ask for a code) takes the defaults.
    const guard = task.validators.find((v) => v.def === activityCode)?.args as { ttlSeconds: number; turnstile: boolean } | undefined;
    if (guard?.turnstile) {
      await requireTurnstile(siteverify(c.env), body.turnstileToken ?? query.turnstileToken, c.req.header("cf-connecting-ip"), c.get("requestId"));
    }
    const deviceId = body.device ?? query.device ?? c.req.header("x-device-id") ?? null;
    if (deviceId !== null && deviceId.length > 128) throw new AppError("INVALID_PARAMS", "X-Device-Id: at most 128 characters");
    const { code, claims } = await issueActivityCode(c.env, {
      userId: user.id,
      activityId: activity.id,
      taskId: task.id,
      deviceId,
      now: c.get("now"),
      ttlSeconds: guard?.ttlSeconds ?? MAX_CODE_TTL_SECONDS,
    });
    return c.json(
      {
        ok: true as const,
        requestId: c.get("requestId"),
        code,
        activityId: activity.id,
        taskId: task.id,
        device: deviceId,
        expiresAt: new Date(claims.exp).toISOString(),
      },
      200,
    );
  });
}
