/** GET /health: liveness, without touching storage (the benchmark's baseline route). */
import { createRoute, z } from "@hono/zod-openapi";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../http";
import { success } from "../openapi/responses";

const route = createRoute({
  method: "get",
  path: "/health",
  operationId: "getHealth",
  tags: ["Operations"],
  summary: "Liveness check",
  security: [],
  responses: {
    200: success(z.object({ ok: z.literal(true), time: z.iso.datetime() }).openapi("Health"), "The worker is up"),
  },
});

export function registerHealth(app: OpenAPIHono<AppEnv>) {
  app.openapi(route, (c) => c.json({ ok: true as const, time: new Date().toISOString() }, 200));
}
