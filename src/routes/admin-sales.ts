/** Operator API for flash sales: create one (or set up a declared one's shards), read its counts, close it. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../http";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { closeSale, createSale, saleStats } from "../sales/admin";
import { SaleFieldsSchema, SaleIdSchema } from "../sales/sale-definition";
import { findSale } from "../sales/sales";

const CreateSale = SaleFieldsSchema.extend({
  id: SaleIdSchema,
  beginTime: z.string().min(1).openapi({ example: "2026-11-11T00:00:00+08:00" }),
  endTime: z.string().min(1).openapi({ example: "2026-11-11T00:10:00+08:00" }),
  timezone: z.string().default("UTC").openapi({ description: "How to read times without an offset" }),
})
  .strict()
  .openapi("CreateFlashSale");

const Counts = {
  stock: z.number().int(),
  held: z.number().int(),
  sold: z.number().int(),
  remaining: z.number().int(),
  expired: z.number().int(),
  cancelled: z.number().int(),
};
const StatsSchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    id: z.string(),
    sku: z.string(),
    state: z.enum(["upcoming", "open", "sold-out", "ended", "closed"]),
    ...Counts,
    inTransit: z.number().int().openapi({ description: "Units lent between shards and not yet taken up" }),
    shards: z.array(z.object({ ...Counts, lentOut: z.number().int(), borrowedIn: z.number().int() })),
  })
  .openapi("FlashSaleStats");

const params = z.object({ saleId: SaleIdSchema });
/** What every sale route can answer. */
const ADMIN_ERRORS = {
  INVALID_PARAMS: "a malformed sale id",
  UNAUTHENTICATED: "missing or wrong operator token",
  NOT_FOUND: "no such sale",
  UNAVAILABLE: "ADMIN_TOKEN is not set, a shard did not answer (repeat the request), or the sale changed in config after it opened",
  INTERNAL: ALWAYS.INTERNAL,
} as const;
const stats = (description: string, status = 200) => success(StatsSchema, description, {}, status);

const routes = {
  create: createRoute({
    method: "post",
    path: "/v1/admin/flash-sales",
    operationId: "createFlashSale",
    tags: ["Admin"],
    summary: "Create a flash sale",
    security: [{ operator: [] }],
    request: { body: { content: { "application/json": { schema: CreateSale } }, required: true } },
    responses: {
      201: stats("Created", 201),
      ...errorResponses({
        ...BODY_ERRORS,
        INVALID_PARAMS: "a malformed field, unknown timezone, an end before the begin, or more shards than stock",
        UNAUTHENTICATED: ADMIN_ERRORS.UNAUTHENTICATED,
        ALREADY_EXISTS: "a sale with this id exists (in config or created before)",
        UNAVAILABLE: ADMIN_ERRORS.UNAVAILABLE,
        INTERNAL: ALWAYS.INTERNAL,
      }),
    },
  }),
  stats: createRoute({
    method: "get",
    path: "/v1/admin/flash-sales/{saleId}",
    operationId: "getFlashSaleStats",
    tags: ["Admin"],
    summary: "A sale's counts: held + sold + remaining = stock, per shard and in all",
    security: [{ operator: [] }],
    request: { params },
    responses: { 200: stats("The sale's counts"), ...errorResponses(ADMIN_ERRORS) },
  }),
  close: createRoute({
    method: "post",
    path: "/v1/admin/flash-sales/{saleId}/close",
    operationId: "closeFlashSale",
    tags: ["Admin"],
    summary: "Close a sale: no more grabs (held tokens may still check out before they expire)",
    security: [{ operator: [] }],
    request: { params },
    responses: { 200: stats("Closed"), ...errorResponses(ADMIN_ERRORS) },
  }),
};

export function registerAdminSales(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.create, async (c) => {
    const def = await createSale(c.env, c.req.valid("json"));
    return c.json({ requestId: c.get("requestId"), ...(await saleStats(c.env, def, c.get("now"))) }, 201);
  });

  app.openapi(routes.stats, async (c) => {
    const def = await findSale(c.env, c.req.valid("param").saleId);
    return c.json({ requestId: c.get("requestId"), ...(await saleStats(c.env, def, c.get("now"))) }, 200);
  });

  app.openapi(routes.close, async (c) => {
    const def = await findSale(c.env, c.req.valid("param").saleId);
    await closeSale(c.env, def);
    return c.json({ requestId: c.get("requestId"), ...(await saleStats(c.env, def, c.get("now"))) }, 200);
  });
}
