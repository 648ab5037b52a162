/** GET /v1/membership/skus/{sku}/eligibility: would a purchase of the SKU by the signed-in user pass now, and why not. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { userAccount } from "../../durable-objects/support/stubs";
import { requireUser, signedInUser } from "../auth/require-user";
import { activeConfig } from "../config/store";
import { AppError } from "../errors";
import { IdSchema, type AppEnv } from "../http";
import { programOf } from "../membership/answers";
import { skuOf } from "../membership/program";
import { place } from "../membership/timeline";
import { ALWAYS, errorResponses, success } from "../openapi/responses";

const EligibilitySchema = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    sku: z.string(),
    identityType: z.string(),
    eligible: z.boolean(),
    code: z
      .enum(["IDENTITY_CONFLICT", "PRECONDITION_FAILED", "NOT_ELIGIBLE"])
      .optional()
      .openapi({ description: "Why not: the code the grant would be refused with" }),
    reason: z.string().optional(),
    start: z.iso.datetime().optional().openapi({ description: "Where the segment would start (after the identity's last segment for a renewal)" }),
    end: z.iso.datetime().optional(),
    renewal: z.boolean().optional().openapi({ description: "It would stack on the identity the user holds" }),
  })
  .openapi("SkuEligibility");

const route = createRoute({
  method: "get",
  path: "/v1/membership/skus/{sku}/eligibility",
  operationId: "getSkuEligibility",
  tags: ["Membership"],
  summary: "Whether a purchase of a SKU would be granted now, and where its segment would go",
  description:
    "Checked against the user's timeline as it is now, for the order page: the grant (POST /v1/membership/grants) " +
    "checks again, and decides, in the user's account.",
  security: [{ bearer: [] }],
  request: {
    params: z.object({ sku: IdSchema.openapi({ example: "gold-month" }) }),
    query: z.object({ channel: z.string().min(1).max(64).optional().openapi({ description: "The channel the order would be placed on" }) }),
  },
  responses: {
    200: success(EligibilitySchema, "The answer, eligible or not"),
    ...errorResponses({
      INVALID_PARAMS: "a malformed SKU id or channel",
      UNAUTHENTICATED: "no token, or a malformed, expired or forged one",
      NOT_FOUND: "no such SKU, or no membership program",
      ...ALWAYS,
    }),
  },
});

export function registerMembershipEligibility(app: OpenAPIHono<AppEnv>) {
  app.use("/v1/membership/skus/:sku/eligibility", requireUser("sign in to check a membership purchase"));
  app.openapi(route, async (c) => {
    const user = signedInUser(c);
    const { sku: id } = c.req.valid("param");
    const { channel } = c.req.valid("query");
    const program = programOf(await activeConfig(c.env));
    const sku = skuOf(program, id);
    if (!sku) throw new AppError("NOT_FOUND", `no membership SKU '${id}'`);
    const base = { ok: true as const, requestId: c.get("requestId"), sku: sku.id, identityType: sku.identityType };
    if (!sku.sources.includes("purchase")) {
      return c.json(
        { ...base, eligible: false, code: "NOT_ELIGIBLE" as const, reason: `SKU '${sku.id}' is not sold (its sources: ${sku.sources.join(", ")})` },
        200,
      );
    }
    if (sku.channels && (channel === undefined || !sku.channels.includes(channel))) {
      return c.json(
        { ...base, eligible: false, code: "NOT_ELIGIBLE" as const, reason: `SKU '${sku.id}' is sold on ${sku.channels.join(", ")} only` },
        200,
      );
    }
    const at = place(await userAccount(c.env, user.id).identities(), program, sku, c.get("now"));
    if (!at.ok) return c.json({ ...base, eligible: false, code: at.code, reason: at.message }, 200);
    return c.json(
      { ...base, eligible: true, start: new Date(at.start).toISOString(), end: new Date(at.end).toISOString(), renewal: at.renewal },
      200,
    );
  });
}
