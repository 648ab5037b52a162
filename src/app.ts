/** The HTTP app: request id and clock, the routes, and the one error handler. */
import { HTTPException } from "hono/http-exception";
import { AppError, errorBody, isRetryable } from "./errors";
import { createApp, requestNow } from "./http";
import { registerDocs } from "./routes/docs";
import { registerHealth } from "./routes/health";
import { registerMe } from "./routes/me";
import { registerTasks } from "./routes/tasks";
import { registerPrizes } from "./routes/prizes";
import { registerAdminPools } from "./routes/admin-pools";
import { registerAdminSales } from "./routes/admin-sales";
import { registerFlashSales } from "./routes/flash-sales";
import { requireOperator } from "./auth/operator";
import { registerHeaders } from "./openapi/responses";

export const app = createApp();

app.use(async (c, next) => {
  c.set("requestId", crypto.randomUUID());
  c.set("now", requestNow(c.env, c.req.header("x-fanfare-now")));
  await next();
  c.header("x-request-id", c.get("requestId"));
});

registerHealth(app);
registerTasks(app);
registerMe(app);
registerPrizes(app);
registerFlashSales(app);
app.openAPIRegistry.registerComponent("securitySchemes", "operator", { type: "http", scheme: "bearer", description: "ADMIN_TOKEN" });
registerHeaders(app);
app.use("/v1/admin/*", requireOperator);
registerAdminPools(app);
registerAdminSales(app);
registerDocs(app);

app.notFound((c) => c.json(errorBody(c.get("requestId") ?? crypto.randomUUID(), "NOT_FOUND", `no route ${c.req.method} ${c.req.path}`), 404));

app.onError((err, c) => {
  const requestId = c.get("requestId") ?? crypto.randomUUID();
  if (err instanceof AppError) {
    return c.json(errorBody(requestId, err.code, err.message), err.status, { ...err.headers, "x-request-id": requestId });
  }
  if (isRetryable(err)) {
    // A Durable Object (or the queue) refused or dropped the work: the client may retry. Nothing is half-done,
    // since every change is one transaction in one object (a grab that did commit is found by its Idempotency-Key).
    console.warn(JSON.stringify({ message: "overloaded", requestId, error: String(err) }));
    return c.json(errorBody(requestId, "UNAVAILABLE", "busy: please retry shortly"), 503, { "retry-after": "1", "x-request-id": requestId });
  }
  if (err instanceof HTTPException && err.status < 500) {
    if (/json/i.test(err.message)) return c.json(errorBody(requestId, "INVALID_JSON", "the request body is not valid JSON"), 400, { "x-request-id": requestId });
    return c.json(errorBody(requestId, "INVALID_PARAMS", err.message), 400, { "x-request-id": requestId });
  }
  console.error(JSON.stringify({ message: "unhandled error", requestId, error: String(err), stack: (err as Error).stack }));
  return c.json(errorBody(requestId, "INTERNAL", "internal error"), 500, { "x-request-id": requestId });
});
