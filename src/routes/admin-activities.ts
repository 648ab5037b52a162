/**
 * GET /v1/admin/activities/{activityId}/counters: what an activity's shared counters hold now (stock and budget
 * left, caps of everyone together) and how many took part. Read from the counter shards and from D1, never by
 * visiting user accounts: an operator's look costs the same for ten users or ten million.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { and, count, countDistinct, eq } from "drizzle-orm";
import { activeConfig } from "../config/store";
import { counterTotals } from "../counters/counters";
import { counterScope } from "../counters/scope";
import type { CounterDefinition } from "../counters/counter-definition";
import { participations } from "../db/schema";
import { treeBudgets } from "../engine/reward-tree/tree";
import { AppError } from "../errors";
import { database, IdSchema, type AppEnv } from "../http";
import { ALWAYS, errorResponses, success } from "../openapi/responses";

const CountersSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    activityId: z.string(),
    at: z.iso.datetime().openapi({ description: "The instant whose periods (today's caps) are shown" }),
    counters: z.array(
      z.object({
        id: z.string().openapi({ example: "double11-2026/redPacket:stock:limit_key:limit_key_90" }),
        tasks: z.array(z.string()).openapi({ description: "The tasks that take from it" }),
        capacity: z.number().int(),
        shards: z.number().int(),
        used: z.number().int().openapi({ description: "Given by committed runs" }),
        reserved: z.number().int().openapi({ description: "Held by runs not yet settled (back at their deadline if unused)" }),
        remaining: z.number().int(),
      }),
    ),
    participations: z.object({
      runs: z.number().int().openapi({ description: "Participations recorded in D1 (they trail the runs by about a second)" }),
      users: z.number().int(),
    }),
  })
  .openapi("ActivityCounters");

const route = createRoute({
  method: "get",
  path: "/v1/admin/activities/{activityId}/counters",
  operationId: "getActivityCounters",
  tags: ["Admin"],
  summary: "An activity's shared counters (stock, budget, caps) and participation totals",
  security: [{ operator: [] }],
  request: { params: z.object({ activityId: IdSchema }) },
  responses: {
    200: success(CountersSchema, "The counters now"),
    ...errorResponses({
      INVALID_PARAMS: "a malformed activity id",
      UNAUTHENTICATED: "missing or wrong operator token",
      NOT_FOUND: "no such activity",
      UNAVAILABLE: "ADMIN_TOKEN is not set, no config was pushed, or a counter shard did not answer",
      INTERNAL: ALWAYS.INTERNAL,
    }),
  },
});

export function registerAdminActivities(app: OpenAPIHono<AppEnv>) {
  app.openapi(route, async (c) => {
    const { activityId } = c.req.valid("param");
    const config = await activeConfig(c.env);
    const activity = config.activities.get(activityId);
    if (!activity) throw new AppError("NOT_FOUND", `no activity '${activityId}'`);
    const now = c.get("now");
    // Each counter once, with every task that takes from it (tasks may share a stock by its key).
    const found = new Map<string, { def: CounterDefinition; tasks: string[] }>();
    for (const task of Object.values(activity.tasks)) {
      const scope = counterScope(c.env, activity, config.revision, task.id, now);
      const budgets = treeBudgets(task.rewardTree.root).map((b) => scope.sharedCounter(b.key, b.total, b.shards));
      for (const defs of [
        ...[...task.validators, ...task.commands, ...task.rewards, ...task.afterCommands].map((p) => p.def.sharedCounters?.(p.args, scope) ?? []),
        budgets,
      ]) {
        for (const def of defs) {
          const seen = found.get(def.id);
          if (seen) seen.tasks.includes(task.id) || seen.tasks.push(task.id);
          else found.set(def.id, { def, tasks: [task.id] });
        }
      }
    }
    const mine = and(eq(participations.namespace, activity.namespace), eq(participations.activityId, activity.id));
    const [totals, [took]] = await Promise.all([
      Promise.all([...found.values()].map(({ def }) => counterTotals(c.env, def))),
      database(c.env)
        .select({ runs: count(), users: countDistinct(participations.userId) })
        .from(participations)
        .where(mine),
    ]);
    const counters = [...found.values()].map(({ def, tasks }, i) => ({
      id: def.id,
      tasks,
      capacity: def.capacity,
      shards: def.shards,
      used: totals[i]!.used,
      reserved: totals[i]!.reserved,
      remaining: totals[i]!.remaining,
    }));
    return c.json(
      {
        ok: true as const,
        requestId: c.get("requestId"),
        activityId,
        at: new Date(now).toISOString(),
        counters,
        participations: took ?? { runs: 0, users: 0 },
      },
      200,
    );
  });
}
