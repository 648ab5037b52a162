import { describe, expect, it } from "vitest";
import { call } from "../helpers";
import { checkResponse } from "./conformance";

const doc = async () => (await call("/openapi.json", { method: "GET" })).json;
const operations = (d: any) =>
  Object.entries(d.paths).flatMap(([path, item]) => Object.entries(item as Record<string, any>).map(([method, op]) => ({ path, method, op })));

describe("the OpenAPI document", () => {
  it("is OpenAPI 3.1 with every route, each with a unique operationId, on the serving deployment", async () => {
    const d = await doc();
    expect(d.openapi).toBe("3.1.0");
    expect(d.servers).toEqual([{ url: "/", description: "This deployment" }]);
    expect(Object.keys(d.paths)).toEqual(
      expect.arrayContaining(["/health", "/docs", "/openapi.json", "/v1/activities/{activityId}/tasks/{taskId}", "/v1/activities/{activityId}/me"]),
    );
    const ids = operations(d).map(({ op }) => op.operationId);
    expect(ids.every((id) => typeof id === "string" && id.length > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("asks no credentials of the public routes and a scheme of every other one", async () => {
    const d = await doc();
    const publicOps = operations(d)
      .filter(({ op }) => op.security.length === 0)
      .map(({ method, path }) => `${method} ${path}`);
    expect(publicOps.sort()).toEqual(["get /docs", "get /health", "get /openapi.json", "get /v1/flash-sales/{saleId}"]);
    for (const { path, op } of operations(d)) {
      if (op.security.length === 0) continue;
      const service =
        path.startsWith("/v1/users/") ||
        path.startsWith("/v1/events") ||
        path === "/v1/points/adjust" ||
        path === "/v1/discounts/evaluate" ||
        path.startsWith("/v1/membership/grants") ||
        path.startsWith("/v1/benefits/entitlements/") ||
        path.endsWith("/payments");
      const partner = /^\/v1\/partners\/\{partnerId\}\/callbacks$/.test(path);
      const scheme = path.startsWith("/v1/admin/") ? "operator" : service ? "service" : partner ? "partnerSignature" : "bearer";
      expect(op.security).toEqual([{ [scheme]: [] }]);
    }
  });

  it("lists the error codes of each response, and the protocol headers it carries", async () => {
    const d = await doc();
    const post = d.paths["/v1/activities/{activityId}/tasks/{taskId}"].post;
    expect(post.responses["415"].content["application/json"].schema.properties.error.properties.code.enum).toEqual(["UNSUPPORTED_MEDIA_TYPE"]);
    expect(post.responses["403"].content["application/json"].schema.properties.error.properties.code.enum).toEqual(
      expect.arrayContaining(["OUTSIDE_TIME_WINDOW", "NOT_ELIGIBLE", "NO_CHANCES"]),
    );
    expect(Object.keys(post.responses["429"].headers)).toEqual(
      expect.arrayContaining(["Retry-After", "RateLimit-Policy", "RateLimit", "X-Request-Id"]),
    );
    expect(Object.keys(post.responses["200"].headers)).toEqual(expect.arrayContaining(["Idempotent-Replayed", "RateLimit"]));
    expect(Object.keys(post.responses["401"].headers)).toContain("WWW-Authenticate");
    expect(d.components.headers["RateLimit-Policy"].schema.type).toBe("string");
  });

  it("describes a reward outcome as a union on its type", async () => {
    const d = await doc();
    expect(d.components.schemas.RewardOutcome.discriminator).toEqual({
      propertyName: "type",
      mapping: {
        redPacket: "#/components/schemas/RedPacketOutcome",
        chances: "#/components/schemas/ChancesOutcome",
        coupon: "#/components/schemas/CouponOutcome",
        lottery: "#/components/schemas/LotteryOutcome",
        points: "#/components/schemas/PointsOutcome",
        redeemCode: "#/components/schemas/RedeemCodeOutcome",
        membership: "#/components/schemas/MembershipOutcome",
        partnerBenefit: "#/components/schemas/PartnerBenefitOutcome",
      },
    });
    expect(d.components.schemas.Health.properties.time.format).toBe("date-time");
  });
});

describe("the response check that call() applies", () => {
  const url = new URL("https://fanfare.test/v1/flash-sales/d11-phone");
  const json = (status: number, body: unknown) => {
    const text = JSON.stringify(body);
    return [new Response(text, { status, headers: { "content-type": "application/json" } }), text] as const;
  };

  it("accepts an answer that matches its declared status and schema", async () => {
    const [res, text] = json(404, { ok: false, requestId: "r", error: { code: "NOT_FOUND", message: "no flash sale" } });
    expect(await checkResponse("GET", url, res, text)).toBeUndefined();
  });

  it("refuses a status the operation does not declare", async () => {
    const [res, text] = json(410, { ok: false, requestId: "r", error: { code: "TOKEN_EXPIRED", message: "gone" } });
    expect(await checkResponse("GET", url, res, text)).toMatch(/getFlashSale\) answered 410, a status its document does not declare/);
  });

  it("refuses an error code its response does not list, and a body that misses a field", async () => {
    const [res, text] = json(404, { ok: false, requestId: "r", error: { code: "SOLD_OUT", message: "sold out" } });
    expect(await checkResponse("GET", url, res, text)).toMatch(/does not match its declared schema: error\.code/);
    const [res2, text2] = json(200, { ok: true, requestId: "r", id: "d11-phone" });
    expect(await checkResponse("GET", url, res2, text2)).toMatch(/does not match its declared schema/);
  });

  it("refuses a protocol header the response does not declare", async () => {
    const [, text] = json(404, { ok: false, requestId: "r", error: { code: "NOT_FOUND", message: "no flash sale" } });
    const res = new Response(text, { status: 404, headers: { "content-type": "application/json", "idempotent-replayed": "true" } });
    expect(await checkResponse("GET", url, res, text)).toMatch(/headers its document does not declare for it: Idempotent-Replayed/);
  });

  it("refuses a field the document does not list", async () => {
    const [res, text] = json(404, { ok: false, requestId: "r", error: { code: "NOT_FOUND", message: "no flash sale" }, hint: "try another" });
    expect(await checkResponse("GET", url, res, text)).toMatch(/does not match its declared schema/);
  });
});

describe("the reference page", () => {
  it("serves Scalar from the worker's own assets, pointed at /openapi.json", async () => {
    const res = await call("/docs", { method: "GET" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(res.json).toContain('<script src="/scalar/standalone.js"></script>');
    expect(res.json).toContain('url: "/openapi.json"');
  });
});
