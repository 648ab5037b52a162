/**
 * GET /v1/me/benefits: the rights center, every benefit of the catalog with whether the user has it now and why not,
 * beside the user's entitlements of it.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import { requireUser, signedInUser } from "../auth/require-user";
import { ISSUANCES, MATERIAL_TYPES } from "../benefits/material";
import { benefitStock, CLAIMS_ACTIVITY, monthlyClaimsKey } from "../benefits/claims";
import { counterCovers } from "../counters/counters";
import { judge, RIGHT_REASONS } from "../benefits/rights";
import { EntitlementSchema } from "../benefits/answers";
import { HOLDS_QUOTA } from "../benefits/entitlements";
import { codesLeft } from "../codes/code-pools";
import { activeConfig } from "../config/store";
import type { AppEnv } from "../http";
import { programOf } from "../membership/answers";
import { ALWAYS, errorResponses, success } from "../openapi/responses";

const RightSchema = z
  .object({
    benefitId: z.string(),
    title: z.string(),
    material: z.object({
      id: z.string(),
      version: z.string().openapi({ description: "The material's content hash: an edit of the material is a new version" }),
      type: z.enum(MATERIAL_TYPES),
      name: z.string(),
      supplier: z.string(),
      faceValue: z.number().int(),
      issuance: z.enum(ISSUANCES),
    }),
    price: z.object({ program: z.string(), points: z.number().int() }).nullable(),
    available: z.boolean(),
    reason: z.enum(RIGHT_REASONS).optional().openapi({ description: "Why not available: the first rule the user does not meet" }),
    message: z.string().optional(),
    segmentId: z.string().optional().openapi({ description: "The identity segment that entitles it (or, when not available, the closest one held)" }),
    entitlements: z.array(EntitlementSchema).openapi({ description: "The user's entitlements of this benefit, newest first" }),
  })
  .openapi("BenefitRight");

const RightsSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    userId: z.string(),
    at: z.iso.datetime(),
    benefits: z.array(RightSchema).openapi({ description: "Every benefit of the catalog, in its configured order" }),
  })
  .openapi("BenefitRights");

const route = createRoute({
  method: "get",
  path: "/v1/me/benefits",
  operationId: "getMyBenefits",
  tags: ["Benefits"],
  summary: "The rights center: every benefit, and whether the user has it now and why not",
  description:
    "Each benefit of the catalog (the materials and benefits declared beside the membership program) with " +
    "`available` and, when false, `reason`: NO_IDENTITY (no identity of the types it names is held now), " +
    "RANK_TOO_LOW, SEGMENT_NOT_ENTITLED (the identity came from a source or channel it does not accept), " +
    "NOT_IN_WINDOW (outside its claim window), QUOTA_USED (claimed as often as its monthly or per-segment quota allows), " +
    "SOLD_OUT (its stock is given out or its code pool is empty) or INSUFFICIENT_POINTS (fewer spendable points than its price); beside it, the " +
    "user's `entitlements` of the benefit with their status. Reading it makes this month's `monthly` entitlements " +
    "when the account's alarm has not yet (once per month; they are then given from the user's outbox), and expires those that " +
    "can no longer be given or used (an available one whose segment ended or month passed, a delivered one past its `expiresAt`).",
  security: [{ bearer: [] }],
  responses: {
    200: success(RightsSchema, "The user's rights"),
    ...errorResponses({
      UNAUTHENTICATED: "no token, or a malformed, expired or forged one",
      NOT_FOUND: "the bundle declares no membership program",
      ...ALWAYS,
    }),
  },
});

export function registerMeBenefits(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/me/benefits", requireUser("sign in to see your benefits"));
  app.openapi(route, async (c) => {
    const user = signedInUser(c);
    const now = c.get("now");
    const config = await activeConfig(c.env);
    const program = programOf(config);
    const benefits = config.benefits?.benefits ?? [];
    const account = userAccount(c.env, user.id);
    const segments = await account.identities();
    const entitlements = (await account.entitlements(user.id, config.benefits, program, now)).reverse();
    // Per benefit, the entitlements each segment holds toward a per-segment quota (failed and revoked ones free theirs).
    const held = (benefitId: string) => {
      const counts = new Map<string, number>();
      for (const e of entitlements) {
        if (e.benefitId === benefitId && HOLDS_QUOTA.includes(e.status)) counts.set(e.segmentId, (counts.get(e.segmentId) ?? 0) + 1);
      }
      return counts;
    };
    const spendable = new Map<string, number>();
    for (const p of new Set(benefits.flatMap((b) => (b.price ? [b.price.program] : [])))) {
      spendable.set(p, (await account.pointBalances(p, now)).active);
    }
    const quotaKeys = new Map(
      benefits.flatMap((b) => (b.quota?.perMonth !== undefined ? [[b.id, monthlyClaimsKey(b, now, program.timezone)] as const] : [])),
    );
    const claimed: Record<string, number> = quotaKeys.size > 0 ? await account.counters(CLAIMS_ACTIVITY, [...quotaKeys.values()]) : {};
    const rights = [];
    for (const b of benefits) {
      const pool = b.material.type === "redeemCode" ? config.codePools.get(b.material.codePool) : undefined;
      const stock = benefitStock(c.env, config, b, now);
      // Read only: the stock's shards are peeked (the user's home shard first), the code pool's walked; nothing is taken.
      const inStock =
        pool || stock ? (!pool || (await codesLeft(c.env, pool, user.id))) && (!stock || (await counterCovers(c.env, stock, user.id, 1))) : undefined;
      const key = quotaKeys.get(b.id);
      const claimedThisMonth = key === undefined ? undefined : (claimed[key] ?? 0);
      const right = judge(b, {
        program,
        segments,
        now,
        spendable,
        ...(inStock !== undefined && { inStock }),
        ...(claimedThisMonth !== undefined && { claimedThisMonth }),
        ...(b.quota?.perSegment !== undefined && { heldBySegment: held(b.id) }),
      });
      const m = b.material;
      rights.push({
        benefitId: b.id,
        title: b.title,
        material: { id: m.id, version: m.version, type: m.type, name: m.name, supplier: m.supplier, faceValue: m.faceValue, issuance: m.issuance },
        price: b.price,
        available: right.available,
        ...(!right.available && { reason: right.reason, message: right.message }),
        ...(right.segment && { segmentId: right.segment.id }),
        entitlements: entitlements.filter((e) => e.benefitId === b.id),
      });
    }
    return c.json({ ok: true as const, requestId: c.get("requestId"), userId: user.id, at: new Date(now).toISOString(), benefits: rights }, 200);
  });
}
