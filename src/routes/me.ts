/**
 * GET /v1/activities/{activityId}/me: the signed-in user's chances and balances (from the user's account, exact, in
 * one call) and participations and rewards (from D1's records, which trail the account by a moment).
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { and, count, desc, eq } from "drizzle-orm";
import { requireUser, signedInUser } from "../auth/require-user";
import { CHANCE_PREFIX, chanceBalances } from "../accounts/chances";
import { activeConfig } from "../config/store";
import { participations, rewardRecords } from "../db/schema";
import { userAccount } from "../../durable-objects/support/stubs";
import { AppError } from "../errors";
import { database, IdSchema, type AppEnv } from "../http";
import { ALWAYS, errorResponses, success } from "../openapi/responses";

const MeSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    activityId: z.string(),
    userId: z.string(),
    chances: z.record(
      z.string(),
      z.object({
        name: z.string(),
        balance: z.number().int(),
        resets: z.string().openapi({ description: "The period the balance resets with", example: "day" }),
      }),
    ),
    redPacketBalance: z.record(z.string(), z.number().int()).openapi({ description: "Minor units by currency" }),
    participations: z.object({
      total: z.number().int(),
      byTask: z.record(z.string(), z.number().int()),
      recent: z.array(z.object({ id: z.string(), taskId: z.string(), period: z.string(), at: z.iso.datetime() })),
    }),
    rewards: z.array(
      z.object({
        grantId: z.string(),
        taskId: z.string(),
        type: z.string(),
        amount: z.number().int(),
        detail: z.record(z.string(), z.unknown()),
        status: z.string().openapi({ description: "granted, pending (a delivery under way), delivered, failed, claimed, …" }),
        at: z.iso.datetime(),
      }),
    ),
  })
  .openapi("Me");

const route = createRoute({
  method: "get",
  path: "/v1/activities/{activityId}/me",
  operationId: "getMyActivityState",
  tags: ["Tasks"],
  summary: "The user's chances, balances, participations and rewards in an activity",
  security: [{ bearer: [] }],
  request: { params: z.object({ activityId: IdSchema }) },
  responses: {
    200: success(MeSchema, "The user's state"),
    ...errorResponses({
      INVALID_PARAMS: "the activity id is malformed",
      UNAUTHENTICATED: "no token, or a malformed, expired or forged one",
      NOT_FOUND: "unknown activity",
      ...ALWAYS,
    }),
  },
});

const RECENT = 50;
const BALANCE_PREFIX = "redPacket:balance:";

export function registerMe(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/activities/:activityId/me", requireUser("sign in to see your activity"));
  app.openapi(route, async (c) => {
    const user = signedInUser(c);
    const { activityId } = c.req.valid("param");
    const activity = (await activeConfig(c.env)).activities.get(activityId);
    if (!activity) throw new AppError("NOT_FOUND", `no activity '${activityId}'`);
    const db = database(c.env);
    const ns = activity.namespace;
    const mine = and(eq(participations.namespace, ns), eq(participations.userId, user.id));
    const [counters, byTask, recent, rewards] = await Promise.all([
      userAccount(c.env, user.id).counters(ns, [CHANCE_PREFIX, BALANCE_PREFIX]),
      db.select({ taskId: participations.taskId, n: count() }).from(participations).where(mine).groupBy(participations.taskId),
      db.select().from(participations).where(mine).orderBy(desc(participations.createdAt)).limit(RECENT),
      db
        .select()
        .from(rewardRecords)
        .where(and(eq(rewardRecords.namespace, ns), eq(rewardRecords.userId, user.id)))
        .orderBy(desc(rewardRecords.createdAt))
        .limit(RECENT),
    ]);
    return c.json(
      {
        ok: true as const,
        requestId: c.get("requestId"),
        activityId,
        userId: user.id,
        chances: chanceBalances(activity, counters, c.get("now")),
        redPacketBalance: Object.fromEntries(
          Object.entries(counters).flatMap(([k, v]) => (k.startsWith(BALANCE_PREFIX) ? [[k.slice(BALANCE_PREFIX.length), v]] : [])),
        ),
        participations: {
          total: byTask.reduce((s, t) => s + t.n, 0),
          byTask: Object.fromEntries(byTask.map((t) => [t.taskId, t.n])),
          recent: recent.map((p) => ({ id: p.id, taskId: p.taskId, period: p.period, at: new Date(p.createdAt).toISOString() })),
        },
        rewards: rewards.map((r) => ({
          grantId: r.id,
          taskId: r.taskId,
          type: r.type,
          amount: r.amount,
          detail: JSON.parse(r.detail) as Record<string, unknown>,
          status: r.status,
          at: new Date(r.createdAt).toISOString(),
        })),
      },
      200,
    );
  });
}
