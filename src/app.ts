/** The HTTP app: request id and clock, the routes, and the one error handler. */
import { HTTPException } from "hono/http-exception";
import { AppError, errorBody } from "./errors";
import { createApp, requestNow } from "./http";
import { registerDocs } from "./routes/docs";
import { registerHealth } from "./routes/health";
import { registerMe } from "./routes/me";
import { registerTasks } from "./routes/tasks";
import { registerPrizes } from "./routes/prizes";
import { registerAdminPools } from "./routes/admin-pools";

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
registerAdminPools(app);
registerDocs(app);

app.notFound((c) => c.json(errorBody(c.get("requestId") ?? crypto.randomUUID(), "NOT_FOUND", `no route ${c.req.method} ${c.req.path}`), 404));

app.onError((err, c) => {
  const requestId = c.get("requestId") ?? crypto.randomUUID();
  if (err instanceof AppError) {
    return c.json(errorBody(requestId, err.code, err.message), err.status, { ...err.headers, "x-request-id": requestId });
  }
  if (err instanceof HTTPException && err.status < 500) {
    return c.json(errorBody(requestId, "INVALID_PARAMS", err.message), 400, { "x-request-id": requestId });
  }
  console.error(JSON.stringify({ message: "unhandled error", requestId, error: String(err), stack: (err as Error).stack }));
  return c.json(errorBody(requestId, "INTERNAL", "internal error"), 500, { "x-request-id": requestId });
});
