/**
 * POST /v1/flash-sales/{saleId}/payments: the cashier confirms that a buyer paid for a flash sale of identities (a
 * service key with `membership:write`). The buyer's token is consumed (checked out, as the buyer's checkout would) and
 * the sale's membership SKU granted under the order's id, source `flashSale`. Both steps are idempotent (the order id
 * is derived from the token, the segment's externalRef is the order id): a retried confirmation answers the same order
 * and segment. A token never paid goes back to stock at its checkout deadline as any other.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import { requireService } from "../auth/service";
import { activeConfig } from "../config/store";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import { programOf, SegmentSchema } from "../membership/answers";
import { skuOf } from "../membership/program";
import { place } from "../membership/timeline";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { orderIdFor, SaleIdSchema } from "../sales/sale-definition";
import { checkout, findSale } from "../sales/sales";
import { canonicalJson, sha256Hex } from "../sharding";
import { OrderSchema, TokenBody } from "./flash-sales";

const PaymentBodySchema = TokenBody.extend({
  userId: z.string().min(1).max(128).openapi({ description: "The buyer: the user who took the token" }),
  channel: z.string().min(1).max(64).optional().openapi({ description: "The channel the order was placed on" }),
})
  .strict()
  .openapi("SalePayment");

const PaymentAnswerSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    order: OrderSchema,
    segment: SegmentSchema,
    replayed: z.boolean().openapi({ description: "True: this token was confirmed before; the same order and segment" }),
  })
  .openapi("SalePaymentAnswer");

const route = createRoute({
  method: "post",
  path: "/v1/flash-sales/{saleId}/payments",
  operationId: "confirmSalePayment",
  tags: ["Flash sales"],
  summary: "Confirm a buyer's payment: consume the token and grant the sale's membership SKU",
  description:
    "For a sale that names a `membershipSku`. The user's timeline is checked first: a grant that would be refused " +
    "(PRECONDITION_FAILED, IDENTITY_CONFLICT, NOT_ELIGIBLE) leaves the token held, to go back to stock at its " +
    "deadline. Then the token is checked out and the segment granted under the order id, source `flashSale`.",
  security: [{ service: [] }],
  request: {
    params: z.object({ saleId: SaleIdSchema.openapi({ example: "gold-flash" }) }),
    body: { content: { "application/json": { schema: PaymentBodySchema } }, required: true },
  },
  responses: {
    200: success(PaymentAnswerSchema, "Paid: the order and the granted segment"),
    ...errorResponses({
      ...BODY_ERRORS,
      INVALID_PARAMS: "a malformed body",
      UNAUTHENTICATED: "no service key, or an unknown, expired or revoked one",
      MISSING_SCOPE: "the key lacks membership:write",
      FORBIDDEN: "another buyer's token",
      NOT_FOUND: "no such sale or token, the sale sells no membership SKU, or no membership program",
      TOKEN_EXPIRED: "past its checkout deadline, or cancelled; the unit went back on sale",
      PRECONDITION_FAILED: "the SKU's pre-condition does not hold for the buyer",
      IDENTITY_CONFLICT: "the buyer holds a conflicting identity",
      NOT_ELIGIBLE: "the SKU is not sold on this channel, or its fixed end has passed",
      ...ALWAYS,
    }),
  },
});

export function registerFlashSalePayments(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/flash-sales/:saleId/payments", requireService("membership:write"));
  app.openapi(route, async (c) => {
    const { saleId } = c.req.valid("param");
    const { userId, token, channel } = c.req.valid("json");
    const now = c.get("now");
    const def = await findSale(c.env, saleId);
    if (def.membershipSku === undefined) throw new AppError("NOT_FOUND", `sale '${def.id}' sells no membership SKU`);
    const config = await activeConfig(c.env);
    const program = programOf(config);
    const sku = skuOf(program, def.membershipSku);
    if (!sku) throw new AppError("NOT_FOUND", `no membership SKU '${def.membershipSku}'`);
    const account = userAccount(c.env, userId);
    const orderId = await orderIdFor(token);
    // A confirmation not yet granted is checked against the timeline before the token is spent; a retried one is not.
    const segments = await account.identities();
    if (!segments.some((s) => s.externalRef === orderId)) {
      const at = place(segments, program, sku, now);
      if (!at.ok) throw new AppError(at.code, at.message);
    }
    const { order, replayed } = await checkout(c.env, def, token, userId, now);
    const fingerprint = await sha256Hex(canonicalJson({ userId, sku: sku.id, source: "flashSale", channel: channel ?? null }));
    const r = await account.grantIdentity(
      program,
      {
        userId,
        sku: sku.id,
        source: "flashSale",
        channel: channel ?? null,
        externalRef: order.orderId,
        fingerprint,
        now,
      },
      config.benefits,
    );
    // Only a grant that lost a race since the check above gets here refused: the order stands, paid and ungranted.
    if (!r.ok) throw new AppError(r.code, `order ${order.orderId} is paid but its identity was refused: ${r.message}`);
    const answer = { ...order, createdAt: new Date(order.createdAt).toISOString() };
    return c.json({ ok: true as const, requestId: c.get("requestId"), order: answer, segment: r.segment, replayed: replayed && r.replayed }, 200);
  });
}
