/**
 * Consumer routes of flash sales: grab a stock token, check out with it (idempotent by token), cancel it, and the
 * sale's public status. Each is rate limited by ROUTE_RATE_LIMITS, and grab also by the sale's own `rateLimit`.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { checkKey, requestFingerprint, withIdempotency } from "../accounts/idempotency";
import { userAccount } from "../../durable-objects/support/stubs";
import { requireUser, signedInUser } from "../auth/require-user";
import { vars } from "../platform/vars";
import type { AppEnv } from "../http";
import { queueGrab } from "../intake/intake";
import { ticketPath } from "../intake/tickets";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { queuedResponse, ticketAccepted } from "../openapi/tickets";
import { enforceRateLimits, enforceRouteLimits } from "../rate-limit/enforce";
import { SaleIdSchema } from "../sales/sale-definition";
import { cancel, checkout, findSale, grab, publicStatus, tokenAnswer } from "../sales/sales";
import type { Context } from "hono";
import type { SaleDefinition } from "../sales/sale-definition";
import { activeConfig } from "../config/store";
import { AppError } from "../errors";
import { log } from "../platform/log";
import { guardGrant } from "../risk/edge";
import { judge, refusalOf } from "../risk/engine";

const params = z.object({ saleId: SaleIdSchema.openapi({ example: "d11-phone" }) });
export const TokenBody = z
  .object({ token: z.string().min(1).max(200).openapi({ example: "d11-phone.0.q1w2e3r4t5y6u7i8o9p0aa" }) })
  .openapi("SaleToken");

export const OrderSchema = z
  .object({
    orderId: z.string(),
    saleId: z.string(),
    sku: z.string(),
    userId: z.string(),
    token: z.string(),
    price: z.number().int().openapi({ description: "Minor units" }),
    createdAt: z.iso.datetime(),
  })
  .openapi("Order");
export const StockTokenSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    saleId: z.string(),
    token: z.string(),
    expiresAt: z.iso.datetime().openapi({ description: "Check out before this, or the unit goes back on sale" }),
    replayed: z.boolean().openapi({ description: "True when this is the token an earlier grab with the same Idempotency-Key took" }),
  })
  .openapi("StockToken");
const limited = { rateLimited: true };
/** What every consumer route of a sale can answer besides its own refusals. */
const SALE_ERRORS = {
  INVALID_PARAMS: "a malformed sale id, token or Idempotency-Key",
  NOT_FOUND: "no such sale",
  RATE_LIMITED: "over ROUTE_RATE_LIMITS or the sale's own `rateLimit` (a grab: or a refusing detector of its risk scene)",
  UNAVAILABLE: "a stock shard is busy, or the sale's config changed after it opened (Retry-After)",
  INTERNAL: ALWAYS.INTERNAL,
} as const;
const BUYER_ERRORS = { ...SALE_ERRORS, UNAUTHENTICATED: "no token, or a malformed, expired or forged one" } as const;

/** What the routes that take a token (checkout, cancel) answer besides their own codes. */
const TOKEN_ERRORS = {
  ...BUYER_ERRORS,
  ...BODY_ERRORS,
  NOT_FOUND: "no such sale or token",
  FORBIDDEN: "another buyer's token",
} as const;

const routes = {
  grab: createRoute({
    method: "post",
    path: "/v1/flash-sales/{saleId}/grab",
    operationId: "grabStockToken",
    tags: ["Flash sales"],
    summary: "Take a stock token: the unit is held for you until checkout or its expiry",
    description:
      "A sale declared `intake: queue` answers 202 with a ticket instead: its grabs run from a queue in arrival order, " +
      "and GET /v1/tickets/{ticketId} tells the outcome (a token, or the refusal a direct grab would have got).",
    security: [{ bearer: [] }],
    request: {
      params,
      headers: z.object({
        "idempotency-key": z
          .string()
          .optional()
          .openapi({ description: "A repeated grab with the same key gets the token the first one took (a queued grab: the same ticket)" }),
      }),
    },
    responses: {
      200: success(StockTokenSchema, "A token", limited),
      202: queuedResponse({ ...limited, replayable: true }),
      ...errorResponses(
        {
          ...BUYER_ERRORS,
          ...BODY_ERRORS,
          NOT_STARTED: "the sale has not started",
          ENDED: "the sale has ended or was closed",
          SOLD_OUT: "no unit is left",
          RISK_REJECTED: "a blacklisted user, device or address, or the risk engine's deny in the sale's risk scene",
          CHALLENGE_REQUIRED: "the risk engine asks the client to prove itself first (an activity code)",
          LIMIT_REACHED: "the buyer holds or bought the per-user limit",
          LOCKED: "a queued grab with this Idempotency-Key is still being queued",
          IDEMPOTENCY_MISMATCH: "a queued grab's Idempotency-Key was used with another request",
        },
        limited,
      ),
    },
  }),
  checkout: createRoute({
    method: "post",
    path: "/v1/flash-sales/{saleId}/checkout",
    operationId: "checkOut",
    tags: ["Flash sales"],
    summary: "Check out with a token: the order (the same order however often it is repeated)",
    security: [{ bearer: [] }],
    request: { params, body: { content: { "application/json": { schema: TokenBody } }, required: true } },
    responses: {
      200: success(
        z
          .object({
            ok: z.literal(true),
            requestId: z.string(),
            order: OrderSchema,
            replayed: z.boolean().openapi({ description: "True when the token was checked out before" }),
          })
          .openapi("Checkout"),
        "The order",
        limited,
      ),
      ...errorResponses(
        {
          ...TOKEN_ERRORS,
          TOKEN_EXPIRED: "past its checkout deadline, or cancelled; the unit went back on sale",
        },
        limited,
      ),
    },
  }),
  cancel: createRoute({
    method: "post",
    path: "/v1/flash-sales/{saleId}/cancel",
    operationId: "cancelStockToken",
    tags: ["Flash sales"],
    summary: "Give a held token back: its unit goes back on sale at once",
    security: [{ bearer: [] }],
    request: { params, body: { content: { "application/json": { schema: TokenBody } }, required: true } },
    responses: {
      200: success(
        z.object({ ok: z.literal(true), requestId: z.string(), token: z.string(), status: z.literal("cancelled") }).openapi("Cancellation"),
        "Cancelled",
        limited,
      ),
      ...errorResponses(
        {
          ...TOKEN_ERRORS,
          TOKEN_USED: "already checked out",
          TOKEN_EXPIRED: "past its checkout deadline, or cancelled before",
        },
        limited,
      ),
    },
  }),
  status: createRoute({
    method: "get",
    path: "/v1/flash-sales/{saleId}",
    operationId: "getFlashSale",
    tags: ["Flash sales"],
    summary: "Public status of a sale (cached for SALE_STATUS_CACHE_MS)",
    security: [],
    request: { params },
    responses: {
      200: success(
        z
          .object({
            ok: z.literal(true),
            requestId: z.string(),
            id: z.string(),
            sku: z.string(),
            name: z.string(),
            price: z.number().int(),
            state: z.enum(["upcoming", "open", "sold-out", "ended", "closed"]),
            stock: z.number().int(),
            remaining: z.number().int(),
            beginsAt: z.iso.datetime(),
            endsAt: z.iso.datetime(),
          })
          .openapi("FlashSaleStatus"),
        "The sale",
        limited,
      ),
      ...errorResponses(SALE_ERRORS, limited),
    },
  }),
};

/**
 * Risk control of a grab: the blacklist and the sale's scene's detectors at the edge, then, in a scene, the risk
 * engine's judgement (a grab is the grant itself). A grab has no request record: its decision is logged.
 */
async function guardGrab(c: Context<AppEnv>, def: SaleDefinition, userId: string) {
  // Only a sale declared in a config has a scene (the admin API's sales have none): no config read for the others.
  const scene = def.riskScene === undefined ? undefined : (await activeConfig(c.env)).riskScenes.get(def.riskScene);
  const client = await guardGrant(c, userId, scene, `sale:${def.id}:grab`);
  if (!scene) return;
  const requestId = c.get("requestId");
  const question = { requestId, client, activity: null, task: null, sale: def.id, reward: [def.sku] };
  const decision = await judge(c.env, (p) => c.executionCtx.waitUntil(p), scene, question, Date.now());
  if (decision.by !== "not-asked") log.info("risk decision", { requestId, sale: def.id, user: userId, ...decision });
  const refusal = refusalOf(decision);
  if (refusal) throw new AppError(refusal.code, refusal.message);
}

export function registerFlashSales(app: OpenAPIHono<AppEnv>) {
  for (const action of ["grab", "checkout", "cancel"])
    app.use(`/v1/flash-sales/:saleId/${action}`, requireUser("sign in to take part in a flash sale"));

  app.openapi(routes.grab, async (c) => {
    const user = signedInUser(c);
    await enforceRouteLimits(c, "flash-sale.grab", user);
    const def = await findSale(c.env, c.req.valid("param").saleId);
    await enforceRateLimits(c, `sale:${def.id}:grab`, def.rateLimit, user);
    await guardGrab(c, def, user.id);
    const key = c.req.header("idempotency-key");
    if (def.intake === "queue") {
      const requestId = c.get("requestId");
      const fingerprint = await requestFingerprint("POST", c.req.url, {});
      // A queued grab's answer is its ticket, kept under the key (a repeat gets the same ticket, not a second grab).
      const idem =
        key === undefined ? undefined : { key: checkKey(key), account: userAccount(c.env, user.id), namespace: `sale:${def.id}`, fingerprint };
      return withIdempotency(idem, requestId, async () => {
        const ticket = await queueGrab(c.env, def, user, { requestId, now: c.get("now"), fingerprint });
        return c.json(ticketAccepted(requestId, ticket), 202, { location: ticketPath(ticket) });
      });
    }
    const t = await grab(c.env, def, user.id, c.get("now"), key === undefined ? undefined : checkKey(key));
    return c.json(tokenAnswer(c.get("requestId"), def, t), 200);
  });

  app.openapi(routes.checkout, async (c) => {
    const user = signedInUser(c);
    await enforceRouteLimits(c, "flash-sale.checkout", user);
    const def = await findSale(c.env, c.req.valid("param").saleId);
    const { order, replayed } = await checkout(c.env, def, c.req.valid("json").token, user.id, c.get("now"));
    return c.json(
      { ok: true as const, requestId: c.get("requestId"), order: { ...order, createdAt: new Date(order.createdAt).toISOString() }, replayed },
      200,
    );
  });

  app.openapi(routes.cancel, async (c) => {
    const user = signedInUser(c);
    await enforceRouteLimits(c, "flash-sale.cancel", user);
    const def = await findSale(c.env, c.req.valid("param").saleId);
    const { token } = c.req.valid("json");
    await cancel(c.env, def, token, user.id, c.get("now"));
    return c.json({ ok: true as const, requestId: c.get("requestId"), token, status: "cancelled" as const }, 200);
  });

  app.openapi(routes.status, async (c) => {
    await enforceRouteLimits(c, "flash-sale.status", null);
    const def = await findSale(c.env, c.req.valid("param").saleId);
    const s = await publicStatus(c.env, def, c.get("now"), vars(c.env).SALE_STATUS_CACHE_MS);
    return c.json(
      {
        ok: true as const,
        requestId: c.get("requestId"),
        id: def.id,
        sku: def.sku,
        name: def.name,
        price: def.price,
        state: s.state,
        stock: def.stock,
        remaining: s.remaining,
        beginsAt: new Date(def.begin).toISOString(),
        endsAt: new Date(def.end).toISOString(),
      },
      200,
    );
  });
}
