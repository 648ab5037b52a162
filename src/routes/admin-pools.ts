/**
 * Operator API for prize pools: define one the task config declares `managed: api` (PUT), set up a pool's shards ahead
 * of traffic (POST), read stats, replenish, withdraw, close. Behind the operator token (src/auth/operator.ts).
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { IdSchema, type AppEnv } from "../http";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { checkKey } from "../accounts/idempotency";
import { adjustPool, closePool, definePool, findActivity, findPool, poolStats } from "../prizes/admin";
import { PoolFieldsSchema } from "../prizes/pool-definition";

const params = z.object({ activityId: IdSchema, poolId: IdSchema.openapi({ example: "main" }) });
const TierStatsSchema = z.object({
  id: z.string(),
  name: z.string(),
  value: z.number().int(),
  quantity: z.number().int(),
  released: z.number().int(),
  issued: z.number().int(),
  claimed: z.number().int(),
  expired: z.number().int(),
  cancelled: z.number().int(),
  outstanding: z.number().int(),
  remaining: z.number().int(),
});
const StatsSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    pool: z.string(),
    status: z.enum(["open", "closed"]),
    at: z.iso.datetime(),
    tiers: z.array(TierStatsSchema),
    schedule: z.array(z.object({ at: z.iso.datetime(), released: z.number().int(), issued: z.number().int() })),
    storedBytes: z.number().int().openapi({ description: "Stored state of all shards, in bytes" }),
  })
  .openapi("PoolStats");
const AdjustSchema = z.object({ tier: IdSchema, quantity: z.number().int().min(1).max(1_000_000_000) }).openapi("PoolAdjustment");
/** What every pool route can answer; a change adds LOCKED, a body the body's codes. */
const ADMIN_ERRORS = {
  INVALID_PARAMS: "a malformed activity or pool id",
  UNAUTHENTICATED: "missing or wrong operator token",
  NOT_FOUND: "no such activity or pool, or a `managed: api` pool not defined yet",
  UNAVAILABLE: "ADMIN_TOKEN is not set, a shard did not answer (repeat the request), or the pool changed in config after first use",
  INTERNAL: ALWAYS.INTERNAL,
} as const;
const CHANGE_ERRORS = { ...ADMIN_ERRORS, LOCKED: "another operator change to this pool is in progress (Retry-After)" } as const;
const stats = (description: string, status = 200) => success(StatsSchema, description, {}, status);
const ADJUST_ERRORS = {
  ...CHANGE_ERRORS,
  ...BODY_ERRORS,
  INVALID_PARAMS: "a malformed id, body or Idempotency-Key, an unknown tier, or more units than a shard has unreleased",
  IDEMPOTENCY_MISMATCH: "the Idempotency-Key was used for another change to this pool",
} as const;
const adjustHeaders = z.object({
  "idempotency-key": z
    .string()
    .optional()
    .openapi({ description: "A repeat with the same key (after a lost answer) is answered without changing the pool again" }),
});

const path = "/v1/admin/activities/{activityId}/pools/{poolId}";
const CreatePool = PoolFieldsSchema.openapi("PoolDefinition", {
  description: "Times without an offset are read in the activity's timezone; the window defaults to the activity's",
  example: {
    probability: 0.5,
    perUserCap: 1,
    claimWithinSeconds: 86400,
    curve: [1, 1, 2],
    shards: 2,
    tiers: [{ id: "voucher", name: "10-yuan voucher", quantity: 10000, value: 1000 }],
  },
});

const routes = {
  create: createRoute({
    method: "post",
    path,
    operationId: "setUpPool",
    tags: ["Admin"],
    summary: "Set up a pool's shards now, ahead of traffic",
    security: [{ operator: [] }],
    request: { params },
    responses: { 200: stats("The pool's statistics"), ...errorResponses(ADMIN_ERRORS) },
  }),
  define: createRoute({
    method: "put",
    path,
    operationId: "definePool",
    tags: ["Admin"],
    summary: "Define a pool the task config declares `managed: api`",
    description:
      "The flow: create the pool and its prizes here, name it in the task (`lottery: { pool: … }`). A definition " +
      "is written once: sending the same one again answers 200, another one 409 (change quantities with replenish " +
      "and withdraw).",
    security: [{ operator: [] }],
    request: { params, body: { content: { "application/json": { schema: CreatePool } }, required: true } },
    responses: {
      200: stats("Already defined so"),
      201: stats("Defined", 201),
      ...errorResponses({
        ...ADMIN_ERRORS,
        ...BODY_ERRORS,
        INVALID_PARAMS: "a malformed id or definition, or a time window outside the activity's",
        NOT_FOUND: "no such activity, or it declares no such pool",
        ALREADY_EXISTS: "the pool is defined otherwise (in config, or by an earlier request)",
      }),
    },
  }),
  stats: createRoute({
    method: "get",
    path,
    operationId: "getPoolStats",
    tags: ["Admin"],
    summary: "Pool statistics per tier, and the schedule beside what happened",
    security: [{ operator: [] }],
    request: { params },
    responses: { 200: stats("The pool's statistics"), ...errorResponses(ADMIN_ERRORS) },
  }),
  replenish: createRoute({
    method: "post",
    path: `${path}/replenish`,
    operationId: "replenishPool",
    tags: ["Admin"],
    summary: "Add units, spread over the rest of the window",
    security: [{ operator: [] }],
    request: { params, headers: adjustHeaders, body: { content: { "application/json": { schema: AdjustSchema } }, required: true } },
    responses: { 200: stats("The pool's statistics after the change"), ...errorResponses(ADJUST_ERRORS) },
  }),
  withdraw: createRoute({
    method: "post",
    path: `${path}/withdraw`,
    operationId: "withdrawFromPool",
    tags: ["Admin"],
    summary: "Take back units not released yet",
    security: [{ operator: [] }],
    request: { params, headers: adjustHeaders, body: { content: { "application/json": { schema: AdjustSchema } }, required: true } },
    responses: { 200: stats("The pool's statistics after the change"), ...errorResponses(ADJUST_ERRORS) },
  }),
  close: createRoute({
    method: "post",
    path: `${path}/close`,
    operationId: "closePool",
    tags: ["Admin"],
    summary: "Close the pool: no more draws",
    security: [{ operator: [] }],
    request: { params },
    responses: { 200: stats("The pool's statistics, closed"), ...errorResponses(CHANGE_ERRORS) },
  }),
};

export function registerAdminPools(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.create, async (c) => {
    const { activityId, poolId } = c.req.valid("param");
    const def = await findPool(c.env, activityId, poolId);
    return c.json({ requestId: c.get("requestId"), ...(await poolStats(c.env, def, c.get("now"))) }, 200);
  });
  app.openapi(routes.define, async (c) => {
    const { activityId, poolId } = c.req.valid("param");
    const { def, created } = await definePool(c.env, await findActivity(c.env, activityId), poolId, c.req.valid("json"));
    // Its shards are set up now (the stats read creates them), ahead of the first draw.
    return c.json({ requestId: c.get("requestId"), ...(await poolStats(c.env, def, c.get("now"))) }, created ? 201 : 200);
  });
  app.openapi(routes.stats, async (c) => {
    const { activityId, poolId } = c.req.valid("param");
    return c.json({ requestId: c.get("requestId"), ...(await poolStats(c.env, await findPool(c.env, activityId, poolId), c.get("now"))) }, 200);
  });
  for (const [route, sign] of [
    [routes.replenish, 1],
    [routes.withdraw, -1],
  ] as const) {
    app.openapi(route, async (c) => {
      const { activityId, poolId } = c.req.valid("param");
      const { tier, quantity } = c.req.valid("json");
      const def = await findPool(c.env, activityId, poolId);
      const key = c.req.header("idempotency-key");
      await adjustPool(c.env, def, tier, sign * quantity, c.get("now"), key === undefined ? undefined : checkKey(key));
      return c.json({ requestId: c.get("requestId"), ...(await poolStats(c.env, def, c.get("now"))) }, 200);
    });
  }
  app.openapi(routes.close, async (c) => {
    const { activityId, poolId } = c.req.valid("param");
    const def = await findPool(c.env, activityId, poolId);
    await closePool(c.env, def, c.get("now"));
    return c.json({ requestId: c.get("requestId"), ...(await poolStats(c.env, def, c.get("now"))) }, 200);
  });
}
