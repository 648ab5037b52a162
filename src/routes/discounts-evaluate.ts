/** POST /v1/discounts/evaluate: the order system asks which passive discounts a user's identities entitle, per item. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import { requireService } from "../auth/service";
import { evaluateDiscounts } from "../benefits/discounts";
import { activeConfig } from "../config/store";
import type { AppEnv } from "../http";
import { programOf } from "../membership/answers";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";

const EvaluateBodySchema = z
  .object({
    userId: z.string().min(1).max(128),
    items: z
      .array(
        z
          .object({
            itemId: z.string().min(1).max(128),
            category: z.string().min(1).max(64).optional(),
            unitPrice: z.number().int().min(0).openapi({ description: "In the currency's minor units (e.g. fen)" }),
            quantity: z.number().int().min(1).max(10_000),
          })
          .strict(),
      )
      .min(1)
      .max(200),
  })
  .strict()
  .openapi("DiscountEvaluation");

const EvaluatedSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    userId: z.string(),
    at: z.iso.datetime(),
    items: z.array(
      z.object({
        itemId: z.string(),
        off: z.number().int().openapi({ description: "Taken off the line (every unit), in minor units; 0: no discount" }),
        applied: z
          .object({ benefitId: z.string(), material: z.string(), version: z.string(), segmentId: z.string() })
          .nullable()
          .openapi({ description: "The discount applied (the largest the user is entitled to; they do not stack)" }),
      }),
    ),
    totalOff: z.number().int(),
  })
  .openapi("DiscountAnswer");

const route = createRoute({
  method: "post",
  path: "/v1/discounts/evaluate",
  operationId: "evaluateDiscounts",
  tags: ["Benefits"],
  summary: "The passive discounts a user's identities entitle, per order item",
  description:
    "For each item, the largest discount among the catalog's `discount` benefits whose rules the user's identities " +
    "meet now (identity types or rank, the segment's source and channel). Read only: the order system applies it.",
  security: [{ service: [] }],
  request: { body: { content: { "application/json": { schema: EvaluateBodySchema } }, required: true } },
  responses: {
    200: success(EvaluatedSchema, "Each item's discount"),
    ...errorResponses({
      ...BODY_ERRORS,
      INVALID_PARAMS: "a malformed body",
      UNAUTHENTICATED: "no service key, or an unknown, expired or revoked one",
      MISSING_SCOPE: "the key lacks discounts:read",
      NOT_FOUND: "the bundle declares no membership program",
      ...ALWAYS,
    }),
  },
});

export function registerDiscountsEvaluate(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/discounts/evaluate", requireService("discounts:read"));
  app.openapi(route, async (c) => {
    const body = c.req.valid("json");
    const now = c.get("now");
    const config = await activeConfig(c.env);
    const program = programOf(config);
    const segments = await userAccount(c.env, body.userId).identities();
    const items = evaluateDiscounts(config.benefits, program, segments, body.items, now);
    const totalOff = items.reduce((sum, i) => sum + i.off, 0);
    return c.json({ ok: true as const, requestId: c.get("requestId"), userId: body.userId, at: new Date(now).toISOString(), items, totalOff }, 200);
  });
}
