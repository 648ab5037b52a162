/**
 * POST /v1/membership/activate: a signed-in user activates an offline membership card by typing its code. The card
 * is used once, by its code pool's shard (its one writer); the segment of the pool's SKU is then granted in the
 * user's account (source `offlineCard`) under an externalRef derived from the card, so a retry finishes the same
 * activation and never grants twice.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import { requireUser, signedInUser } from "../auth/require-user";
import type { CodePool } from "../codes/code-pool-definition";
import { codeState, consumeCode, storedCode } from "../codes/code-pools";
import { activeConfig } from "../config/store";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import { programOf, SegmentSchema } from "../membership/answers";
import { skuOf } from "../membership/program";
import { place } from "../membership/timeline";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { vars } from "../platform/vars";
import { enforceRateLimits } from "../rate-limit/enforce";
import type { RateLimitRule } from "../rate-limit/rule";
import { canonicalJson, sha256Hex } from "../sharding";

/**
 * Activations tried per minute when ROUTE_RATE_LIMITS names none, per user and per client address (many accounts
 * behind one address count together): card codes must not be guessable by trying.
 */
const DEFAULT_ACTIVATE_LIMITS: RateLimitRule[] = [
  { requests: 10, windowSeconds: 60, by: "user" },
  { requests: 100, windowSeconds: 60, by: "ip" },
];

const ActivateBodySchema = z
  .object({
    code: z.string().trim().min(4).max(128).openapi({ description: "The code printed on the card, as the user typed it", example: "GOLD-7Q2K-99XA" }),
    channel: z.string().min(1).max(64).optional(),
  })
  .strict()
  .openapi("CardActivation");

const ActivateAnswerSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    userId: z.string(),
    pool: z.string().openapi({ description: "The card batch (code pool) the code belongs to" }),
    segment: SegmentSchema,
    replayed: z.boolean().openapi({ description: "True: this user activated this card before; the segment as it is now" }),
    events: z.array(z.string()),
  })
  .openapi("CardActivationAnswer");

const route = createRoute({
  method: "post",
  path: "/v1/membership/activate",
  operationId: "activateMembershipCard",
  tags: ["Membership"],
  summary: "Activate an offline membership card",
  description:
    "Each card code is used once: a second user gets CODE_USED, the same user again gets the same segment " +
    "(`replayed`). The user's timeline is checked before the card is used, so a card is not spent on a grant the " +
    "timeline refuses; if a concurrent change makes the grant fail after all, the card stays this user's and a " +
    "later activation with it grants once the timeline allows.",
  security: [{ bearer: [] }],
  request: { body: { content: { "application/json": { schema: ActivateBodySchema } }, required: true } },
  responses: {
    201: success(ActivateAnswerSchema, "Activated: the segment is on the user's timeline", { rateLimited: true }, 201),
    200: success(ActivateAnswerSchema, "Activated before by this user: the segment as it is now", { rateLimited: true }),
    ...errorResponses(
      {
        ...BODY_ERRORS,
        INVALID_PARAMS: "a malformed body",
        UNAUTHENTICATED: "no token, or a malformed, expired or forged one",
        NOT_FOUND: "no card has this code (or the bundle has no card pools)",
        CODE_USED: "another user activated this card",
        PRECONDITION_FAILED: "the card's SKU needs an identity the user does not hold at its start",
        IDENTITY_CONFLICT: "the card's identity would overlap a conflicting one the user holds",
        NOT_ELIGIBLE: "the card's SKU is not granted on this channel",
        RATE_LIMITED: "too many activations tried (ROUTE_RATE_LIMITS `membership.activate`, default 10 a minute per user and 100 per address)",
        ...ALWAYS,
      },
      { rateLimited: true },
    ),
  },
});

export function registerMembershipActivate(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/membership/activate", requireUser("sign in to activate a membership card"));
  app.openapi(route, async (c) => {
    const user = signedInUser(c);
    await enforceRateLimits(c, "route:membership.activate", vars(c.env).ROUTE_RATE_LIMITS?.["membership.activate"] ?? DEFAULT_ACTIVATE_LIMITS, user);
    const { code, channel } = c.req.valid("json");
    const config = await activeConfig(c.env);
    const program = programOf(config);
    const now = c.get("now");
    const account = userAccount(c.env, user.id);
    const pools = [...config.codePools.values()].filter((p): p is CodePool & { sku: string } => p.kind === "activate" && p.sku !== null);
    for (const pool of pools) {
      const sku = skuOf(program, pool.sku)!;
      // The card's own id: its hash in the pool (the code itself never leaves the shard's hashed store).
      const card = await storedCode(pool, code);
      const externalRef = `card:${pool.id}:${card.slice(0, 32)}`;
      const grant = {
        userId: user.id,
        sku: sku.id,
        source: "offlineCard" as const,
        channel: channel ?? null,
        externalRef,
        // The card is the grant: a retry on another channel is the same activation.
        fingerprint: await sha256Hex(canonicalJson({ userId: user.id, sku: sku.id, source: "offlineCard", card: externalRef })),
        now,
      };
      const by = `activate:${user.id}:${externalRef}`;
      const state = await codeState(c.env, pool, code, by);
      if (state === "unknown") continue; // not this pool's card: the next pool may hold it
      if (state === "used") throw new AppError("CODE_USED", "this card was already activated");
      if (state === "unused") {
        // Checked before the card is spent, so a card is not used up on a grant the timeline refuses (the grant
        // decides again, in the user's account).
        if (sku.channels && (channel === undefined || !sku.channels.includes(channel))) {
          throw new AppError("NOT_ELIGIBLE", `SKU '${sku.id}' is granted on ${sku.channels.join(", ")} only`);
        }
        const at = place(await account.identities(), program, sku, now);
        if (!at.ok) throw new AppError(at.code, at.message);
      }
      const used = await consumeCode(c.env, pool, code, by, now);
      const r = await account.grantIdentity(program, grant, config.benefits);
      if (!r.ok) throw new AppError(r.code, `${r.message} (the card stays yours: activate it again once this no longer holds)`);
      const answer = {
        ok: true as const,
        requestId: c.get("requestId"),
        userId: user.id,
        pool: pool.id,
        segment: r.segment,
        replayed: used.replayed && r.replayed,
        events: r.events,
      };
      return answer.replayed ? c.json(answer, 200) : c.json(answer, 201);
    }
    throw new AppError("NOT_FOUND", "no card has this code");
  });
}
