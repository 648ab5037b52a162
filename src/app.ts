/** The HTTP app: request id and clock, CORS and body checks, the routes, and the one error handler. */
import { HTTPException } from "hono/http-exception";
import { BEARER_CHALLENGE } from "./auth/bearer";
import { AppError, errorBody, isRetryable } from "./errors";
import { corsPolicy } from "./http/middleware/cors";
import { jsonBody, MAX_BODY_BYTES } from "./http/middleware/json-body";
import { createApp, requestNow } from "./http";
import { registerDocs } from "./routes/docs";
import { registerHealth } from "./routes/health";
import { registerMe } from "./routes/me";
import { registerTasks } from "./routes/tasks";
import { registerActivityCodes } from "./routes/activity-codes";
import { registerPrizes } from "./routes/prizes";
import { registerAdminPools } from "./routes/admin-pools";
import { registerAdminSales } from "./routes/admin-sales";
import { CODE_IMPORT_PATH, IMPORT_TYPES, MAX_IMPORT_BYTES, registerAdminCodePools } from "./routes/admin-code-pools";
import { registerAdminDeadLetters } from "./routes/admin-dead-letters";
import { registerAdminActivities } from "./routes/admin-activities";
import { registerAdminServiceKeys } from "./routes/admin-service-keys";
import { registerUserAttributes } from "./routes/user-attributes";
import { registerFlashSales } from "./routes/flash-sales";
import { registerTickets } from "./routes/tickets";
import { registerPoints } from "./routes/points";
import { registerEvents } from "./routes/events";
import { registerAdminReversals, registerReversals } from "./routes/reversals";
import { registerAdminPreview, registerPreview } from "./routes/preview";
import { registerMeIdentities } from "./routes/me-identities";
import { registerMeBenefits } from "./routes/me-benefits";
import { registerBenefitClaims } from "./routes/benefit-claims";
import { registerDiscountsEvaluate } from "./routes/discounts-evaluate";
import { registerMembershipEligibility } from "./routes/membership-eligibility";
import { registerMembershipGrants } from "./routes/membership-grants";
import { registerMembershipActivate } from "./routes/membership-activate";
import { registerMembershipRevoke } from "./routes/membership-revoke";
import { registerFlashSalePayments } from "./routes/flash-sale-payments";
import { registerAdminIdentities } from "./routes/admin-identities";
import { registerAdminEntitlements } from "./routes/admin-entitlements";
import { registerBenefitEntitlementUse } from "./routes/benefit-entitlement-use";
import { registerPartners } from "./routes/partners";
import { registerAdminPartners } from "./routes/admin-partners";
import { registerAdminRisk } from "./routes/admin-risk";
import { registerAdminMembership } from "./routes/admin-membership";
import { requireOperator } from "./auth/operator";
import { registerAdminSegments, SEGMENT_UPLOAD_PATH, SEGMENT_UPLOAD_TYPES } from "./routes/admin-segments";
import { MAX_UPLOAD_BYTES } from "./segments/static-lists";
import { registerHeaders } from "./openapi/responses";
import { log } from "./platform/log";

export const app = createApp();

app.use(async (c, next) => {
  c.set("requestId", crypto.randomUUID());
  c.set("now", requestNow(c.env, c.req.header("x-fanfare-now")));
  await next();
  c.header("x-request-id", c.get("requestId"));
});
app.use(corsPolicy());
app.use(
  "/v1/*",
  jsonBody({
    maxBytes: MAX_BODY_BYTES,
    exceptions: [
      { path: CODE_IMPORT_PATH, maxBytes: MAX_IMPORT_BYTES, types: IMPORT_TYPES, named: "application/json, text/csv or application/x-ndjson" },
      { path: SEGMENT_UPLOAD_PATH, maxBytes: MAX_UPLOAD_BYTES, types: SEGMENT_UPLOAD_TYPES, named: "text/plain or application/json" },
    ],
  }),
);

registerHealth(app);
registerTasks(app);
registerActivityCodes(app);
registerMe(app);
registerPrizes(app);
registerFlashSales(app);
registerTickets(app);
registerPreview(app);
registerMeIdentities(app);
registerMeBenefits(app);
registerBenefitClaims(app);
registerMembershipEligibility(app);
app.openAPIRegistry.registerComponent("securitySchemes", "service", {
  type: "http",
  scheme: "bearer",
  description: "A service key, fsk_<keyId>_<secret> (POST /v1/admin/service-keys), with the route's scope",
});
registerUserAttributes(app);
registerPoints(app);
registerEvents(app);
registerReversals(app);
registerMembershipGrants(app);
registerMembershipActivate(app);
registerMembershipRevoke(app);
registerDiscountsEvaluate(app);
registerBenefitEntitlementUse(app);
registerFlashSalePayments(app);
registerPartners(app);
app.openAPIRegistry.registerComponent("securitySchemes", "operator", { type: "http", scheme: "bearer", description: "ADMIN_TOKEN" });
registerHeaders(app);
app.use("/v1/admin/*", requireOperator);
registerAdminPools(app);
registerAdminSales(app);
registerAdminCodePools(app);
registerAdminDeadLetters(app);
registerAdminActivities(app);
registerAdminServiceKeys(app);
registerAdminReversals(app);
registerAdminPreview(app);
registerAdminIdentities(app);
registerAdminEntitlements(app);
registerAdminPartners(app);
registerAdminRisk(app);
registerAdminMembership(app);
registerAdminSegments(app);
registerDocs(app);

app.notFound((c) => c.json(errorBody(c.get("requestId") ?? crypto.randomUUID(), "NOT_FOUND", `no route ${c.req.method} ${c.req.path}`), 404));

app.onError((err, c) => {
  const requestId = c.get("requestId") ?? crypto.randomUUID();
  if (err instanceof AppError) {
    // Every 401 names the scheme it wants (RFC 9110); refused credentials add error="invalid_token".
    const challenge: Record<string, string> = err.code === "UNAUTHENTICATED" ? { "www-authenticate": BEARER_CHALLENGE } : {};
    return c.json(errorBody(requestId, err.code, err.message, err.details), err.status, { ...challenge, ...err.headers, "x-request-id": requestId });
  }
  if (isRetryable(err)) {
    // A Durable Object (or the queue) refused or dropped the work: the client may retry. Nothing is half-done,
    // since every change is one transaction in one object (a grab that did commit is found by its Idempotency-Key).
    log.warn("overloaded", { requestId, serviceKey: c.get("serviceKey"), error: String(err) });
    return c.json(errorBody(requestId, "UNAVAILABLE", "busy: please retry shortly"), 503, { "retry-after": "1", "x-request-id": requestId });
  }
  if (err instanceof HTTPException && err.status < 500) {
    if (/json/i.test(err.message))
      return c.json(errorBody(requestId, "INVALID_JSON", "the request body is not valid JSON"), 400, { "x-request-id": requestId });
    return c.json(errorBody(requestId, "INVALID_PARAMS", err.message), 400, { "x-request-id": requestId });
  }
  log.error("unhandled error", { requestId, serviceKey: c.get("serviceKey"), error: String(err), stack: (err as Error).stack });
  return c.json(errorBody(requestId, "INTERNAL", "internal error"), 500, { "x-request-id": requestId });
});
