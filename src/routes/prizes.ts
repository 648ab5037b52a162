/** POST /v1/prizes/{grantId}/claim: the winner claims a prize drawn from a pool, once, before its deadline. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { requireUser, signedInUser } from "../auth/require-user";
import { activeConfig } from "../config/store";
import { AppError, type ErrorCode } from "../errors";
import type { AppEnv } from "../http";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { enforceRouteLimits } from "../rate-limit/enforce";
import type { ClaimOutcome } from "../prizes/pool-definition";
import { claimPrize, parsePrizeId, poolById } from "../prizes/pools";

const limited = { rateLimited: true };
const route = createRoute({
  method: "post",
  path: "/v1/prizes/{grantId}/claim",
  operationId: "claimPrize",
  tags: ["Prizes"],
  summary: "Claim a prize won in a lottery",
  security: [{ bearer: [] }],
  request: { params: z.object({ grantId: z.string().max(300).openapi({ example: "pz~double11-2026~main~1f0c…_0~0" }) }) },
  responses: {
    200: success(
      z.object({ ok: z.literal(true), requestId: z.string(), grantId: z.string(), status: z.literal("claimed") }).openapi("Claim"),
      "Claimed",
      limited,
    ),
    ...errorResponses(
      {
        ...BODY_ERRORS,
        INVALID_PARAMS: "the grant id is over 300 characters",
        UNAUTHENTICATED: "no token, or a malformed, expired or forged one",
        FORBIDDEN: "the prize is another user's",
        NOT_FOUND: "no such prize",
        ALREADY_CLAIMED: "the prize was claimed before",
        CLAIM_EXPIRED: "the claim deadline passed; the prize went back to the pool",
        RATE_LIMITED: "over ROUTE_RATE_LIMITS' `prize.claim`",
        ...ALWAYS,
      },
      limited,
    ),
  },
});

/** What a claim that did not succeed answers. */
const REFUSALS: Record<Exclude<ClaimOutcome, "claimed">, [ErrorCode, string]> = {
  "not-found": ["NOT_FOUND", "no such prize"],
  "not-yours": ["FORBIDDEN", "this prize was won by someone else"],
  "already-claimed": ["ALREADY_CLAIMED", "this prize has already been claimed"],
  expired: ["CLAIM_EXPIRED", "the claim deadline has passed"],
};

export function registerPrizes(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/prizes/:grantId/claim", requireUser("sign in to claim a prize"));
  app.openapi(route, async (c) => {
    const user = signedInUser(c);
    await enforceRouteLimits(c, "prize.claim", user);
    const { grantId } = c.req.valid("param");
    const at = parsePrizeId(grantId);
    // Only pools of the active config are asked: a made-up id never reaches (or creates) a pool object.
    const config = await activeConfig(c.env);
    const pool = at && (await poolById(c.env, config, at.poolId));
    if (!at || !pool || at.shard >= pool.shards) throw new AppError("NOT_FOUND", "no such prize");
    const outcome = await claimPrize(c.env, grantId, user.id, c.get("now"));
    if (outcome !== "claimed") throw new AppError(...REFUSALS[outcome]);
    return c.json({ ok: true as const, requestId: c.get("requestId"), grantId, status: "claimed" as const }, 200);
  });
}
