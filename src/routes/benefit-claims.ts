/** POST /v1/benefits/{benefitId}/claim: the signed-in user claims a benefit of the rights center. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import { checkKey, requestFingerprint, withIdempotency } from "../accounts/idempotency";
import { requireUser, signedInUser } from "../auth/require-user";
import { benefitOf } from "../benefits/catalog";
import { CLAIMS_ACTIVITY, isClaimable, monthlyClaimsKey } from "../benefits/claims";
import type { EntitlementRun } from "../benefits/entitlements";
import { periodKey } from "../config/time";
import { judge } from "../benefits/rights";
import { activeConfig } from "../config/store";
import { runTask } from "../engine/pipeline";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import { programOf } from "../membership/answers";
import { ALWAYS, errorResponses, success } from "../openapi/responses";
import { TaskSuccessSchema } from "./tasks";

const route = createRoute({
  method: "post",
  path: "/v1/benefits/{benefitId}/claim",
  operationId: "claimBenefit",
  tags: ["Benefits"],
  summary: "Claim a benefit: its price in points is spent in the same commit as what it gives",
  description:
    "The rights center's rules are checked first (NOT_ELIGIBLE for the identity, its rank or origin, " +
    "OUTSIDE_TIME_WINDOW for the claim window); then the claim runs as a task of the generated `benefits-center` " +
    "activity (its answer is that run's, as a task's): the price is spent in the run's commit (INSUFFICIENT_POINTS spends nothing), a redeem code is taken " +
    "before it (an empty pool is SOLD_OUT and spends nothing), a coupon or a partner's benefit is delivered from the " +
    "user's outbox (a final failure of the delivery refunds the price and fails the entitlement, whose quota unit comes back). " +
    "The claim makes the user's entitlement (GET /v1/me/benefits lists it: `claimed` while a delivery is on its way, then " +
    "`delivered` or `failed`). `Idempotency-Key` replays the first answer.",
  security: [{ bearer: [] }],
  request: {
    params: z.object({
      benefitId: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "not a benefit id")
        .openapi({ example: "hotel-coupon" }),
    }),
    headers: z.object({ "idempotency-key": z.string().optional().openapi({ description: "Replays the first answer for 24 h" }) }),
  },
  responses: {
    200: success(TaskSuccessSchema, "Claimed: the run of the benefit's task (`taskId` is the benefit's id) and what it gave", { replayable: true }),
    ...errorResponses(
      {
        INVALID_PARAMS: "a malformed benefit id or Idempotency-Key",
        UNAUTHENTICATED: "no token, or a malformed, expired or forged one",
        NOT_ELIGIBLE: "the user is not entitled now (the rights center's reason leads the message), or the month's or the segment's quota is used",
        OUTSIDE_TIME_WINDOW: "outside the benefit's claim window",
        CONDITIONS_NOT_MET: "the identity ended between the check and the claim",
        NOT_FOUND: "no such benefit, it is not claimed (a discount, or given with the identity), or its partner does not supply it",
        LOCKED: "a concurrent claim of the same benefit by the user, or the Idempotency-Key's first request is still running",
        SOLD_OUT: "the benefit's stock is given out, or its code pool is empty",
        PARTNER_LIMIT_REACHED: "a partner's benefit whose partner has used up its day (daily quota or budget): nothing was spent",
        INSUFFICIENT_POINTS: "fewer spendable points than its price",
        IDEMPOTENCY_MISMATCH: "the Idempotency-Key was used with a different request",
        ...ALWAYS,
      },
      { replayable: true },
    ),
  },
});

export function registerBenefitClaims(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/benefits/:benefitId/claim", requireUser("sign in to claim a benefit"));
  app.openapi(route, async (c) => {
    const user = signedInUser(c);
    const { benefitId } = c.req.valid("param");
    const now = c.get("now");
    const config = await activeConfig(c.env);
    const program = programOf(config);
    const benefit = benefitOf(config.benefits, benefitId);
    if (!benefit) throw new AppError("NOT_FOUND", `no benefit '${benefitId}'`);
    if (!isClaimable(benefit))
      throw new AppError("NOT_FOUND", `benefit '${benefitId}' is not claimed: it comes with the identity (${benefit.material.issuance})`);
    const account = userAccount(c.env, user.id);
    const right = judge(benefit, { program, segments: await account.identities(), now });
    if (!right.available) {
      throw new AppError(
        right.reason === "NOT_IN_WINDOW" ? "OUTSIDE_TIME_WINDOW" : "NOT_ELIGIBLE",
        `${right.reason}: benefit '${benefitId}' is ${right.message}`,
      );
    }
    const m = benefit.material;
    const points = benefit.price && config.pointPrograms.get(benefit.price.program);
    // The entitlement the claim makes, in its run's commit (its per-segment quota decided there).
    const entitlement: EntitlementRun = {
      kind: "claim",
      benefitId: benefit.id,
      material: { id: m.id, version: m.version, type: m.type },
      segmentId: right.segment.id,
      period: periodKey("month", now, program.timezone),
      perSegment: benefit.quota?.perSegment ?? null,
      price: benefit.price && points ? { program: points, points: benefit.price.points } : null,
      limitKey: benefit.quota?.perMonth === undefined ? null : monthlyClaimsKey(benefit, now, program.timezone),
      validDays: benefit.validity?.days ?? null,
    };
    const key = c.req.header("idempotency-key");
    const idem =
      key === undefined
        ? undefined
        : { key: checkKey(key), account, namespace: CLAIMS_ACTIVITY, fingerprint: await requestFingerprint("POST", c.req.url, {}) };
    return withIdempotency(idem, c.get("requestId"), async () => {
      const result = await runTask({
        requestId: c.get("requestId"),
        now,
        env: c.env,
        ctx: c.executionCtx,
        config,
        method: "POST",
        activityId: CLAIMS_ACTIVITY,
        taskId: benefit.id,
        query: {},
        body: {},
        user,
        idempotency: idem && { namespace: idem.namespace, key: idem.key },
        entitlement,
      });
      return c.json(result, 200);
    });
  });
}
