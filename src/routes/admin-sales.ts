/** Operator API for flash sales: create one (or set up a declared one's shards), read its counts, close it. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { saleShard } from "../../durable-objects/sale-stock";
import { declaredSales } from "../config/store";
import { isTimeZone, parseActivityTime } from "../config/time";
import { flashSales } from "../db/schema";
import type { Env } from "../env";
import { AppError } from "../errors";
import { database, type AppEnv } from "../http";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { saleDefinition, SaleFieldsSchema, SaleIdSchema, type SaleDefinition } from "../sales/sale-definition";
import { findSale, rememberCreatedSale, saleCounts, saleState } from "../sales/sales";
import { onEveryShard } from "../sharding";

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

async function saleStats(env: Env, def: SaleDefinition, now: number) {
  const { totals, closed, shards } = await saleCounts(env, def, now);
  return {
    ok: true as const,
    id: def.id,
    sku: def.sku,
    state: saleState(def, now, closed, totals.remaining),
    ...totals,
    shards: shards.map(({ stock, held, sold, remaining, expired, cancelled, lentOut, borrowedIn }) => ({ stock, held, sold, remaining, expired, cancelled, lentOut, borrowedIn })),
  };
}

export function registerAdminSales(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.create, async (c) => {
    const body = c.req.valid("json");
    if (!isTimeZone(body.timezone)) throw new AppError("INVALID_PARAMS", `timezone: '${body.timezone}' is not an IANA timezone`);
    const begin = parseActivityTime(body.beginTime, body.timezone);
    const end = parseActivityTime(body.endTime, body.timezone);
    if (begin === null) throw new AppError("INVALID_PARAMS", "beginTime: not a time (ISO 8601 or 'YYYY-MM-DD HH:mm:ss')");
    if (end === null) throw new AppError("INVALID_PARAMS", "endTime: not a time (ISO 8601 or 'YYYY-MM-DD HH:mm:ss')");
    if (end <= begin) throw new AppError("INVALID_PARAMS", "endTime must be after beginTime");
    if (body.shards > body.stock) throw new AppError("INVALID_PARAMS", "shards: a sale cannot have more shards than units of stock");
    if ((await declaredSales(c.env)).has(body.id)) throw new AppError("ALREADY_EXISTS", `sale '${body.id}' is declared in task config`);
    const def = saleDefinition(body.id, body, begin, end);
    // The row is the sale: written once, and the shards then set up (a shard missed here sets itself up on first grab).
    const inserted = await database(c.env)
      .insert(flashSales)
      .values({ id: def.id, definition: JSON.stringify(def), createdAt: Date.now() })
      .onConflictDoNothing()
      .returning({ id: flashSales.id });
    if (inserted.length === 0) throw new AppError("ALREADY_EXISTS", `sale '${def.id}' exists`);
    rememberCreatedSale(def);
    await Promise.all(Array.from({ length: def.shards }, (_, i) => saleShard(c.env, def.id, i).define(def, i)));
    return c.json(await saleStats(c.env, def, c.get("now")), 201);
  });

  app.openapi(routes.stats, async (c) => {
    const def = await findSale(c.env, c.req.valid("param").saleId);
    return c.json(await saleStats(c.env, def, c.get("now")), 200);
  });

  app.openapi(routes.close, async (c) => {
    const def = await findSale(c.env, c.req.valid("param").saleId);
    await onEveryShard(`closing sale '${def.id}'`, def.shards, async (i) => {
      const shard = saleShard(c.env, def.id, i);
      await shard.define(def, i);
      await shard.close();
    });
    return c.json(await saleStats(c.env, def, c.get("now")), 200);
  });
}
