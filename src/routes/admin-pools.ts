/**
 * Operator API for prize pools: define one the task config declares `managed: api` (PUT), set up a pool's shards ahead
 * of traffic (POST), read stats, replenish, withdraw, close. Behind the operator token (src/auth/operator.ts).
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import type { CompiledActivity } from "../config/compiled";
import { activeConfig } from "../config/store";
import { innerWindow } from "../config/time";
import { prizePools } from "../db/schema";
import { AppError } from "../errors";
import { database, IdSchema, type AppEnv } from "../http";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import type { PoolDefinition, PoolStats, TierStats } from "../prizes/pool-definition";
import { PoolFieldsSchema, poolDefinition, shardShare } from "../prizes/pool-definition";
import { activityPool, poolShard, rememberCreatedPool } from "../prizes/pools";
import { onEveryShard } from "../sharding";

const params = z.object({ activityId: IdSchema, poolId: IdSchema.openapi({ example: "main" }) });
const TierStatsSchema = z.object({
  id: z.string(), name: z.string(), value: z.number().int(), quantity: z.number().int(), released: z.number().int(),
  issued: z.number().int(), claimed: z.number().int(), expired: z.number().int(), cancelled: z.number().int(),
  outstanding: z.number().int(), remaining: z.number().int(),
});
const StatsSchema = z
  .object({
    ok: z.literal(true),
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
const ADJUST_ERRORS = { ...CHANGE_ERRORS, ...BODY_ERRORS, INVALID_PARAMS: "a malformed id or body, an unknown tier, or more units than a shard has unreleased" } as const;

const path = "/v1/admin/activities/{activityId}/pools/{poolId}";
const CreatePool = PoolFieldsSchema.openapi("PoolDefinition", {
  description: "Times without an offset are read in the activity's timezone; the window defaults to the activity's",
  example: { probability: 0.5, perUserCap: 1, claimWithinSeconds: 86400, curve: [1, 1, 2], shards: 2, tiers: [{ id: "voucher", name: "10-yuan voucher", quantity: 10000, value: 1000 }] },
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
      "Seed 003's flow: create the pool and its prizes here, name it in the task (`lottery: { pool: … }`). A definition " +
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
    request: { params, body: { content: { "application/json": { schema: AdjustSchema } }, required: true } },
    responses: { 200: stats("The pool's statistics after the change"), ...errorResponses(ADJUST_ERRORS) },
  }),
  withdraw: createRoute({
    method: "post",
    path: `${path}/withdraw`,
    operationId: "withdrawFromPool",
    tags: ["Admin"],
    summary: "Take back units not released yet",
    security: [{ operator: [] }],
    request: { params, body: { content: { "application/json": { schema: AdjustSchema } }, required: true } },
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

async function findActivity(env: AppEnv["Bindings"], activityId: string): Promise<CompiledActivity> {
  const activity = (await activeConfig(env)).activities.get(activityId);
  if (!activity) throw new AppError("NOT_FOUND", `no activity '${activityId}'`);
  return activity;
}

async function findPool(env: AppEnv["Bindings"], activityId: string, poolId: string): Promise<PoolDefinition> {
  const pool = await activityPool(env, await findActivity(env, activityId), poolId);
  if (!pool) throw new AppError("NOT_FOUND", `pool '${poolId}' is declared \`managed: api\` but has not been defined: PUT its definition first`);
  return pool;
}

/**
 * Defines a pool the activity declares `managed: api`, once: the D1 row is the definition. True when this request
 * wrote it; false when the same definition was there already (a retry).
 */
async function definePool(env: AppEnv["Bindings"], activity: CompiledActivity, poolId: string, fields: z.output<typeof PoolFieldsSchema>): Promise<{ def: PoolDefinition; created: boolean }> {
  if (activity.pools[poolId]) throw new AppError("ALREADY_EXISTS", `pool '${poolId}' is defined in the task config of '${activity.id}'`);
  const id = activity.managedPools[poolId];
  if (!id) {
    throw new AppError("NOT_FOUND", `activity '${activity.id}' declares no pool '${poolId}': add \`${poolId}: { managed: api }\` under its \`pools\` first`);
  }
  const window = innerWindow(fields.timeWindow, activity.timezone, activity, "pool");
  if ("reason" in window) throw new AppError("INVALID_PARAMS", `timeWindow${window.field ? `.${window.field}` : ""}: ${window.reason}`);
  const def = poolDefinition(id, fields, window.begin, window.end);
  const definition = JSON.stringify(def);
  // Shards already made under this name (by a config that once defined the pool in YAML) keep their definition.
  const made = await poolShard(env, id, 0).shape();
  if (made && JSON.stringify({ ...def, shard: 0 }) !== JSON.stringify(made)) {
    throw new AppError("ALREADY_EXISTS", `pool '${poolId}' was used before with another definition; its shards keep that one`);
  }
  const db = database(env);
  const inserted = await db.insert(prizePools).values({ id, activityId: activity.id, definition, createdAt: Date.now() }).onConflictDoNothing().returning({ id: prizePools.id });
  if (inserted.length === 0) {
    const [stored] = await db.select({ definition: prizePools.definition }).from(prizePools).where(eq(prizePools.id, id));
    if (stored?.definition !== definition) throw new AppError("ALREADY_EXISTS", `pool '${poolId}' was defined otherwise before; change its quantities with replenish or withdraw`);
  }
  rememberCreatedPool(def);
  return { def, created: inserted.length > 0 };
}

/** Longer than any operator change takes; a worker that died holding the lease frees it after this. */
const ADMIN_LEASE_MS = 30_000;

const shards = (env: AppEnv["Bindings"], def: PoolDefinition) =>
  Array.from({ length: def.shards }, (_, i) => ({ i, stub: poolShard(env, def.id, i) }));

/** Runs an operator change with the pool's lease held (on shard 0), so concurrent changes never interleave. */
async function underLease<T>(env: AppEnv["Bindings"], def: PoolDefinition, change: () => Promise<T>): Promise<T> {
  const first = poolShard(env, def.id, 0);
  const holder = crypto.randomUUID();
  if (!(await first.acquireAdminLease(holder, ADMIN_LEASE_MS))) {
    throw new AppError("LOCKED", `another operator change to pool '${def.id}' is in progress; retry shortly`, { "retry-after": "1" });
  }
  try {
    return await change();
  } finally {
    await first.releaseAdminLease(holder);
  }
}

/** Each shard's statistics, refusing a pool whose config no longer matches what its shards were created with. */
async function shardStats(env: AppEnv["Bindings"], def: PoolDefinition, now: number): Promise<PoolStats[]> {
  const parts = shards(env, def);
  const same = await Promise.all(parts.map(({ i, stub }) => stub.defineLikeFirstShard(def, i)));
  if (same.includes(false)) {
    throw new AppError("UNAVAILABLE", `pool '${def.id}' was changed in config after first use: its shards and tiers are fixed`);
  }
  return Promise.all(parts.map(({ stub }) => stub.stats(now)));
}

/** Every shard's statistics added up. */
async function poolStats(env: AppEnv["Bindings"], def: PoolDefinition, now: number, all?: PoolStats[]) {
  all ??= await shardStats(env, def, now);
  const tiers: TierStats[] = all[0]!.tiers.map((t, k) => {
    const sum = (f: keyof TierStats) => all.reduce((s, p) => s + (p.tiers[k]![f] as number), 0);
    return { ...t, quantity: sum("quantity"), released: sum("released"), issued: sum("issued"), claimed: sum("claimed"), expired: sum("expired"), cancelled: sum("cancelled"), outstanding: sum("outstanding"), remaining: sum("remaining") };
  });
  return {
    ok: true as const,
    pool: def.id,
    status: all.some((p) => p.status === "open") ? ("open" as const) : ("closed" as const),
    at: new Date(now).toISOString(),
    tiers,
    storedBytes: all.reduce((n, p) => n + p.storedBytes, 0),
    schedule: all[0]!.schedule.map((s, k) => ({
      at: new Date(s.at).toISOString(),
      released: all.reduce((n, p) => n + p.schedule[k]!.released, 0),
      issued: all.reduce((n, p) => n + p.schedule[k]!.issued, 0),
    })),
  };
}

export function registerAdminPools(app: OpenAPIHono<AppEnv>) {

  app.openapi(routes.create, async (c) => {
    const { activityId, poolId } = c.req.valid("param");
    const def = await findPool(c.env, activityId, poolId);
    return c.json(await poolStats(c.env, def, c.get("now")), 200);
  });
  app.openapi(routes.define, async (c) => {
    const { activityId, poolId } = c.req.valid("param");
    const { def, created } = await definePool(c.env, await findActivity(c.env, activityId), poolId, c.req.valid("json"));
    // Its shards are set up now (the stats read creates them), ahead of the first draw.
    return c.json(await poolStats(c.env, def, c.get("now")), created ? 201 : 200);
  });
  app.openapi(routes.stats, async (c) => {
    const { activityId, poolId } = c.req.valid("param");
    return c.json(await poolStats(c.env, await findPool(c.env, activityId, poolId), c.get("now")), 200);
  });
  for (const [route, sign] of [[routes.replenish, 1], [routes.withdraw, -1]] as const) {
    app.openapi(route, async (c) => {
      const { activityId, poolId } = c.req.valid("param");
      const { tier, quantity } = c.req.valid("json");
      const def = await findPool(c.env, activityId, poolId);
      const now = c.get("now");
      const parts = shards(c.env, def).map(({ i, stub }) => ({ i, stub, n: shardShare(quantity, def.shards, i) }));
      await shardStats(c.env, def, now); // creates the shards on first use, refuses a changed config
      await underLease(c.env, def, async () => {
        // Check that every shard can take its own part before changing any, so a refused withdrawal changes nothing.
        const before = await shardStats(c.env, def, now);
        if (!before[0]!.tiers.some((x) => x.id === tier)) throw new AppError("INVALID_PARAMS", `pool '${poolId}' has no tier '${tier}'`);
        if (sign < 0) {
          for (const p of parts) {
            const t = before[p.i]!.tiers.find((x) => x.id === tier)!;
            const free = t.quantity - Math.max(t.released, t.issued);
            if (p.n > free) throw new AppError("INVALID_PARAMS", `shard ${p.i} has only ${free} units of '${tier}' not released yet (needs ${p.n})`);
          }
        }
        for (const p of parts) {
          if (p.n === 0) continue;
          const r = await p.stub.adjust(tier, sign * p.n, now);
          if (!r.ok) throw new AppError("INVALID_PARAMS", r.reason);
        }
      });
      return c.json(await poolStats(c.env, def, now), 200);
    });
  }
  app.openapi(routes.close, async (c) => {
    const { activityId, poolId } = c.req.valid("param");
    const def = await findPool(c.env, activityId, poolId);
    await shardStats(c.env, def, c.get("now"));
    await underLease(c.env, def, () => onEveryShard(`closing pool '${def.id}'`, def.shards, (i) => poolShard(c.env, def.id, i).close()));
    return c.json(await poolStats(c.env, def, c.get("now")), 200);
  });
}
