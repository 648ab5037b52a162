/** GET /health: liveness, without touching storage (the benchmark's baseline route). */
import { createRoute, z } from "@hono/zod-openapi";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../http";

const route = createRoute({
  method: "get",
  path: "/health",
  tags: ["Operations"],
  summary: "Liveness check",
  responses: {
    200: {
      description: "The worker is up",
      content: { "application/json": { schema: z.object({ ok: z.literal(true), time: z.string() }).openapi("Health") } },
    },
  },
});

export function registerHealth(app: OpenAPIHono<AppEnv>) {
  app.openapi(route, (c) => c.json({ ok: true as const, time: new Date().toISOString() }, 200));
}
