/** POST (or GET) /v1/activities/{activityId}/tasks/{taskId}: run a task for the signed-in user. */
import { refuseClaimsActivity } from "../benefits/claims";
import { z, type OpenAPIHono } from "@hono/zod-openapi";
import { checkKey, requestFingerprint, withIdempotency } from "../accounts/idempotency";
import { userAccount } from "../../durable-objects/support/stubs";
import { identifyUser } from "../auth/require-user";
import { own } from "../config/compiled";
import { activeConfig } from "../config/store";
import { runTask, type Fault } from "../engine/pipeline";
import type { Env } from "../env";
import { vars } from "../platform/vars";
import { AppError } from "../errors";
import { IdSchema, type AppEnv } from "../http";
import { RewardOutcomeSchema } from "../openapi/reward-outcome";
import { MAX_BODY_BYTES } from "../http/middleware/json-body";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { queuedResponse, ticketAccepted } from "../openapi/tickets";
import { queueTaskRun } from "../intake/intake";
import { ticketPath } from "../intake/tickets";
import { enforceRouteLimits } from "../rate-limit/enforce";
import { answerPreview, TaskPreviewSchema } from "./preview";
import { guardGrant } from "../risk/edge";

const PATH = "/v1/activities/:activityId/tasks/:taskId";

export const TaskSuccessSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    activityId: z.string(),
    taskId: z.string(),
    rewards: z.array(RewardOutcomeSchema),
  })
  .openapi("TaskResult");

const TaskParamsSchema = z.record(z.string(), z.unknown()).openapi("TaskParams", {
  description: "The task's request fields, checked by its `request` rules",
  example: { deviceId: "d-1", sex: 1, phone: "13800138000" },
});

const traits = { rateLimited: true, replayable: true };
/** What the body of a POST adds to the codes every task run can answer. */
const POST_ERRORS = { ...BODY_ERRORS, PAYLOAD_TOO_LARGE: `the body is over ${MAX_BODY_BYTES / 1024} KB` } as const;
const RUN_ERRORS = {
  INVALID_PARAMS: "a request rule failed (its configured message), or a malformed Idempotency-Key",
  UNAUTHENTICATED: "no token for a task with `login`, or a malformed, expired or forged one",
  OUTSIDE_TIME_WINDOW: "outside the activity's or the task's time window",
  NOT_ELIGIBLE: "a participation limit was reached",
  NO_CHANCES: "no chances of the kind the task spends are left",
  CONDITIONS_NOT_MET: "the task's `when:` conditions do not hold (details.explanation: every node's result)",
  NOT_FOUND: "unknown activity or task",
  METHOD_NOT_ALLOWED: "the task takes the other method (see Allow)",
  LOCKED: "a concurrent duplicate holds the user's lock, or the Idempotency-Key's first request is still running",
  SOLD_OUT: "a reward's stock or budget is spent",
  INSUFFICIENT_POINTS: "a `spendPoints` guard found too few spendable points",
  IDENTITY_CONFLICT: "a `membership` reward's segment would overlap a conflicting identity of the user",
  PRECONDITION_FAILED: "a `membership` reward's SKU requires an identity the user does not hold at the segment's start",
  CODE_REQUIRED: "an `activityCode` guard found no X-Activity-Code header",
  CODE_INVALID: "the activity code is malformed or forged, or was issued to another user, task or device",
  CODE_EXPIRED: "the activity code has expired",
  CODE_USED: "the activity code was used before",
  IDEMPOTENCY_MISMATCH: "the Idempotency-Key was used with a different request",
  PARTNER_LIMIT_REACHED: "a `partnerBenefit` reward's partner has used up its day (daily quota or budget): nothing was spent",
  RATE_LIMITED: "over the route's or the task's rate limit, or a refusing detector of its risk scene",
  RISK_REJECTED: "a blacklisted user, device or address, or the risk engine's deny in the task's risk scene",
  CHALLENGE_REQUIRED: "the risk engine asks the client to prove itself first (an activity code)",
  ...ALWAYS,
} as const;
const responses = (method: "post" | "get") => ({
  200: success(
    z.union([TaskSuccessSchema, TaskPreviewSchema]),
    "The task ran (TaskResult), or with `dry=true` what it would do (TaskPreview)",
    traits,
  ),
  202: queuedResponse(traits),
  ...errorResponses(method === "post" ? { ...POST_ERRORS, ...RUN_ERRORS } : RUN_ERRORS, traits),
});

const request = {
  params: z.object({ activityId: IdSchema, taskId: IdSchema.openapi({ example: "openRedPacket" }) }),
  query: z.object({
    dry: z.enum(["true", "false"]).optional().openapi({ description: "true: preview the run read-only (nothing written; the preview rate limit)" }),
  }),
  headers: z.object({
    "idempotency-key": z.string().optional().openapi({ description: "Replays the first answer for 24 h" }),
    "x-activity-code": z
      .string()
      .optional()
      .openapi({ description: "For a task with the `activityCode` guard: a code from POST /v1/activities/{activityId}/codes, used once" }),
    "x-device-id": z.string().optional().openapi({ description: "The client's device: an activity code issued to a device is used from it only" }),
  }),
};

function parseBody(method: string, text: string): Record<string, unknown> {
  if (method !== "POST" || text.trim() === "") return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new AppError("INVALID_JSON", "the request body is not valid JSON");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new AppError("INVALID_PARAMS", "the request body must be a JSON object of task params");
  }
  return body as Record<string, unknown>;
}

/** The X-Fanfare-Fault of a crash test, honoured only where ALLOW_FAULT_INJECTION is set (tests, never production). */
function injectedFault(env: Env, header: string | undefined): Fault | undefined {
  if (header === undefined || vars(env).ALLOW_FAULT_INJECTION !== "true") return undefined;
  if (header === "after-reserve" || header === "after-commit") return header;
  throw new AppError("INVALID_PARAMS", "X-Fanfare-Fault must be after-reserve or after-commit");
}

export function registerTasks(app: OpenAPIHono<AppEnv>) {
  for (const method of ["post", "get"] as const) {
    app.openAPIRegistry.registerPath({
      method,
      path: "/v1/activities/{activityId}/tasks/{taskId}",
      operationId: method === "post" ? "runTask" : "runTaskByGet",
      tags: ["Tasks"],
      summary: method === "post" ? "Run a task (POST tasks)" : "Run a task (tasks configured with method GET)",
      description:
        "Runs the task's pipeline: request rules → validators → command → reward → afterCommand. Params come from " +
        "the JSON body (POST) or the query string. The first failing step answers with its code and message. A task " +
        "declared `intake: queue` checks the request rules, then answers 202 with a ticket: the run is made from a " +
        "queue in arrival order, and GET /v1/tickets/{ticketId} tells its outcome.",
      security: [{ bearer: [] }],
      request: method === "post" ? { ...request, body: { content: { "application/json": { schema: TaskParamsSchema } }, required: false } } : request,
      responses: responses(method),
    });
  }

  app.use(PATH, identifyUser());
  app.on(["GET", "POST", "PUT", "PATCH", "DELETE"], PATH, async (c) => {
    const requestId = c.get("requestId");
    const method = c.req.method;
    const ids = request.params.safeParse(c.req.param());
    if (!ids.success) throw new AppError("NOT_FOUND", "no such activity or task");
    const { activityId, taskId } = ids.data;
    refuseClaimsActivity(activityId);
    const user = c.get("user");
    const body = parseBody(method, method === "POST" ? await c.req.text() : "");
    const config = await activeConfig(c.env);
    const client = { activityCode: c.req.header("x-activity-code"), deviceId: c.req.header("x-device-id"), ip: c.req.header("cf-connecting-ip") };

    // Idempotency-Keys live in the user's account, under the activity's namespace (an unknown activity is refused by the run below).
    const key = c.req.header("idempotency-key");
    const activity = config.activities.get(activityId);
    const task = activity && own(activity.tasks, taskId);
    // What makes two requests the same: asked only of those with a key or a ticket (it costs a hash).
    const fingerprint = key !== undefined || task?.intake === "queue" ? await requestFingerprint(method, c.req.url, body) : "";
    const idem =
      key !== undefined && user && activity
        ? { key: checkKey(key), account: userAccount(c.env, user.id), namespace: activity.namespace, fingerprint }
        : undefined;
    // A dry run is a preview: read-only, never stored under a key, limited as previews are.
    if (c.req.query("dry") === "true") {
      const { dry: _, ...query } = c.req.query();
      return c.json(await answerPreview(c, user, activityId, taskId, { query, body }, method), 200);
    }
    return withIdempotency(idem, requestId, async () => {
      // After a replay (a retry of a request already answered gets its answer, not a 429).
      await enforceRouteLimits(c, "tasks", user, task && { scope: `task:${task.activityId}/${task.id}`, rules: task.rateLimit });
      const scene = task?.riskScene === undefined ? undefined : config.riskScenes.get(task.riskScene);
      await guardGrant(c, user?.id ?? null, scene, `task:${activityId}/${taskId}`);
      if (task?.intake === "queue") {
        const run = { config, activityId, taskId, method, query: c.req.query(), body, client };
        const ticket = await queueTaskRun(c.env, run, user, { requestId, now: c.get("now"), fingerprint });
        return c.json(ticketAccepted(requestId, ticket), 202, { location: ticketPath(ticket) });
      }
      const result = await runTask({
        requestId,
        now: c.get("now"),
        env: c.env,
        ctx: c.executionCtx,
        config,
        method,
        activityId,
        taskId,
        query: c.req.query(),
        body,
        user,
        client,
        idempotency: idem && { namespace: idem.namespace, key: idem.key },
        fault: injectedFault(c.env, c.req.header("x-fanfare-fault")),
      });
      return c.json(result, 200);
    });
  });
}
