/**
 * Operator API for partners (src/partners/registry.ts): define one (its first signing secret is shown once), read and
 * list them, change their fields, rotate keys (add a second one, both verify, retire the old one), and read alerts.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { desc, eq } from "drizzle-orm";
import { partnerAlerts } from "../db/schema";
import { AppError } from "../errors";
import { database, IdSchema, type AppEnv } from "../http";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { addKey, createPartner, listPartners, readPartner, retireKey, updatePartner } from "../partners/registry";
import { ConfigIdSchema } from "../config/id";
import { activeConfig } from "../config/store";
import type { Env } from "../env";
import { programOf } from "../points/program";

const DEFAULT_TICKET_TTL_SECONDS = 3600;

const KeySchema = z.object({ id: z.string(), createdAt: z.iso.datetime(), retiredAt: z.iso.datetime().nullable() });

const PartnerSchema = z
  .object({
    id: z.string().openapi({ example: "videoclub" }),
    name: z.string(),
    url: z.string().openapi({ description: "Where deliveries are POSTed" }),
    redirectUrl: z.string().openapi({ description: "Where users are sent with a ticket" }),
    benefits: z.array(z.string()),
    dailyQuota: z.number().int().nullable(),
    dailyBudget: z.number().int().nullable(),
    pointsDelta: z.object({ min: z.number().int(), max: z.number().int() }),
    program: z.string().nullable(),
    ticketTtlSeconds: z.number().int(),
    keys: z.array(KeySchema).openapi({ description: "Signing keys, oldest first; never their secrets" }),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
  })
  .openapi("Partner");

const NewKeySchema = z
  .object({
    keyId: z.string(),
    secret: z.string().openapi({
      description: "The Standard Webhooks secret (whsec_…) both sides sign with. Shown only in this answer: give it to the partner now.",
      example: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwq8Jm1X0pZr4=",
    }),
  })
  .openapi("PartnerKey");

const HttpUrl = z.url({ protocol: /^https?$/ });
const Fields = {
  name: z.string().min(1).max(100),
  url: HttpUrl.openapi({ description: "Where deliveries are POSTed", example: "https://partner.example/fanfare/deliveries" }),
  redirectUrl: HttpUrl.optional().openapi({ description: "Where users are sent with a ticket (default: url)" }),
  benefits: z
    .array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/, "not a benefit id"))
    .max(1000)
    .refine((b) => new Set(b).size === b.length, "benefits must not repeat")
    .openapi({ description: "The benefit ids this partner supplies (each supplied by one partner)", example: ["vip-month"] }),
  dailyQuota: z.number().int().min(0).nullable().openapi({ description: "Deliveries per UTC day; null: unbounded" }),
  dailyBudget: z.number().int().min(0).nullable().openapi({ description: "Sum of deliveries' cost per UTC day; null: unbounded" }),
  pointsDelta: z
    .object({ min: z.number().int().min(0), max: z.number().int().min(0).max(1_000_000_000) })
    .strict()
    .refine((r) => r.min <= r.max, "min must not be above max")
    .openapi({ description: "The range a completion callback's pointsDelta must lie in" }),
  program: ConfigIdSchema.nullable().openapi({ description: "The point program completions credit; null: callbacks move no points" }),
  ticketTtlSeconds: z
    .number()
    .int()
    .min(60)
    .max(30 * 86_400)
    .openapi({ description: "How long a redirect's ticket may be completed" }),
};

const CreateSchema = z
  .object({
    id: IdSchema.openapi({ example: "videoclub" }),
    ...Fields,
    benefits: Fields.benefits.default([]),
    dailyQuota: Fields.dailyQuota.default(null),
    dailyBudget: Fields.dailyBudget.default(null),
    pointsDelta: Fields.pointsDelta.default({ min: 0, max: 0 }),
    program: Fields.program.default(null),
    ticketTtlSeconds: Fields.ticketTtlSeconds.default(DEFAULT_TICKET_TTL_SECONDS),
  })
  .strict()
  .openapi("PartnerDefinition");

const UpdateSchema = z.object(Fields).partial().strict().openapi("PartnerChange");

const ADMIN_ERRORS = {
  INVALID_PARAMS: "a malformed body or id",
  UNAUTHENTICATED: "missing or wrong operator token",
  UNAVAILABLE: "ADMIN_TOKEN or PARTNER_SECRETS_KEY is not set, or D1 is unavailable",
  INTERNAL: ALWAYS.INTERNAL,
} as const;
const answer = <T extends z.ZodRawShape>(shape: T) => z.object({ ok: z.literal(true), requestId: z.string(), ...shape });
const partnerParams = z.object({ partnerId: IdSchema });

const routes = {
  create: createRoute({
    method: "post",
    path: "/v1/admin/partners",
    operationId: "createPartner",
    tags: ["Admin"],
    summary: "Define a partner (its first signing secret is shown once)",
    security: [{ operator: [] }],
    request: { body: { required: true, content: { "application/json": { schema: CreateSchema } } } },
    responses: {
      201: success(answer({ partner: PartnerSchema, key: NewKeySchema }), "The partner, with its signing secret", {}, 201),
      ...errorResponses({
        ...ADMIN_ERRORS,
        ...BODY_ERRORS,
        NOT_FOUND: "the point program is not declared in the active config",
        ALREADY_EXISTS: "the id is taken, or a benefit is supplied by another partner",
      }),
    },
  }),
  list: createRoute({
    method: "get",
    path: "/v1/admin/partners",
    operationId: "listPartners",
    tags: ["Admin"],
    summary: "Every partner (never a secret)",
    security: [{ operator: [] }],
    responses: { 200: success(answer({ partners: z.array(PartnerSchema) }), "The partners, by id"), ...errorResponses(ADMIN_ERRORS) },
  }),
  read: createRoute({
    method: "get",
    path: "/v1/admin/partners/{partnerId}",
    operationId: "getPartner",
    tags: ["Admin"],
    summary: "A partner (never a secret)",
    security: [{ operator: [] }],
    request: { params: partnerParams },
    responses: {
      200: success(answer({ partner: PartnerSchema }), "The partner"),
      ...errorResponses({ ...ADMIN_ERRORS, NOT_FOUND: "no such partner" }),
    },
  }),
  update: createRoute({
    method: "patch",
    path: "/v1/admin/partners/{partnerId}",
    operationId: "updatePartner",
    tags: ["Admin"],
    summary: "Change a partner's fields (benefits are replaced as a whole)",
    security: [{ operator: [] }],
    request: { params: partnerParams, body: { required: true, content: { "application/json": { schema: UpdateSchema } } } },
    responses: {
      200: success(answer({ partner: PartnerSchema }), "The partner as changed"),
      ...errorResponses({
        ...ADMIN_ERRORS,
        ...BODY_ERRORS,
        NOT_FOUND: "no such partner",
        ALREADY_EXISTS: "a benefit is supplied by another partner",
      }),
    },
  }),
  addKey: createRoute({
    method: "post",
    path: "/v1/admin/partners/{partnerId}/keys",
    operationId: "addPartnerKey",
    tags: ["Admin"],
    summary: "Start a rotation: a new signing secret (shown once); both keys verify, outbound calls sign with the new one",
    security: [{ operator: [] }],
    request: { params: partnerParams },
    responses: {
      201: success(answer({ key: NewKeySchema }), "The new key, with its secret", {}, 201),
      ...errorResponses({ ...ADMIN_ERRORS, NOT_FOUND: "no such partner", TOO_MANY_KEYS: "two keys are active: retire one first" }),
    },
  }),
  retireKey: createRoute({
    method: "delete",
    path: "/v1/admin/partners/{partnerId}/keys/{keyId}",
    operationId: "retirePartnerKey",
    tags: ["Admin"],
    summary: "End a rotation: the key no longer signs nor verifies (repeating it changes nothing)",
    security: [{ operator: [] }],
    request: { params: partnerParams.extend({ keyId: z.string().regex(/^k_[A-Za-z0-9_-]{12}$/, "not a key id") }) },
    responses: {
      200: success(answer({ partner: PartnerSchema }), "The partner, with the key retired"),
      ...errorResponses({ ...ADMIN_ERRORS, NOT_FOUND: "no such partner or key", LAST_KEY: "the partner's only active key" }),
    },
  }),
  alerts: createRoute({
    method: "get",
    path: "/v1/admin/partners/{partnerId}/alerts",
    operationId: "listPartnerAlerts",
    tags: ["Admin"],
    summary: "A partner's alerts, newest first (e.g. a callback webhook-id reused with another body)",
    security: [{ operator: [] }],
    request: { params: partnerParams },
    responses: {
      200: success(
        answer({
          alerts: z.array(z.object({ id: z.string(), kind: z.string(), detail: z.record(z.string(), z.unknown()), createdAt: z.iso.datetime() })),
        }),
        "The alerts (the latest 100)",
      ),
      ...errorResponses(ADMIN_ERRORS),
    },
  }),
};

/** A program callbacks are to credit must be declared now (NOT_FOUND otherwise), so a callback never meets an unknown one. */
async function checkProgram(env: Env, program: string | null | undefined) {
  if (program) programOf(await activeConfig(env), program);
}

export function registerAdminPartners(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.create, async (c) => {
    const { id, ...fields } = c.req.valid("json");
    await checkProgram(c.env, fields.program);
    const { summary, key } = await createPartner(c.env, database(c.env), id, fields, c.get("now"));
    return c.json({ ok: true as const, requestId: c.get("requestId"), partner: summary, key }, 201);
  });

  app.openapi(routes.list, async (c) => {
    return c.json({ ok: true as const, requestId: c.get("requestId"), partners: await listPartners(database(c.env)) }, 200);
  });

  app.openapi(routes.read, async (c) => {
    const { partnerId } = c.req.valid("param");
    const partner = await readPartner(database(c.env), partnerId);
    if (!partner) throw new AppError("NOT_FOUND", `no partner '${partnerId}'`);
    return c.json({ ok: true as const, requestId: c.get("requestId"), partner }, 200);
  });

  app.openapi(routes.update, async (c) => {
    const { partnerId } = c.req.valid("param");
    const fields = c.req.valid("json");
    await checkProgram(c.env, fields.program);
    const partner = await updatePartner(database(c.env), partnerId, fields, c.get("now"));
    if (!partner) throw new AppError("NOT_FOUND", `no partner '${partnerId}'`);
    return c.json({ ok: true as const, requestId: c.get("requestId"), partner }, 200);
  });

  app.openapi(routes.addKey, async (c) => {
    const { partnerId } = c.req.valid("param");
    const key = await addKey(c.env, database(c.env), partnerId, c.get("now"));
    return c.json({ ok: true as const, requestId: c.get("requestId"), key }, 201);
  });

  app.openapi(routes.retireKey, async (c) => {
    const { partnerId, keyId } = c.req.valid("param");
    const partner = await retireKey(c.env, database(c.env), partnerId, keyId, c.get("now"));
    if (!partner) throw new AppError("NOT_FOUND", `no partner '${partnerId}'`);
    return c.json({ ok: true as const, requestId: c.get("requestId"), partner }, 200);
  });

  app.openapi(routes.alerts, async (c) => {
    const { partnerId } = c.req.valid("param");
    const db = database(c.env);
    const rows = await db
      .select()
      .from(partnerAlerts)
      .where(eq(partnerAlerts.partnerId, partnerId))
      .orderBy(desc(partnerAlerts.createdAt))
      .limit(100);
    const alerts = rows.map((r) => ({
      id: r.id,
      kind: r.kind,
      detail: JSON.parse(r.detail) as Record<string, unknown>,
      createdAt: new Date(r.createdAt).toISOString(),
    }));
    return c.json({ ok: true as const, requestId: c.get("requestId"), alerts }, 200);
  });
}
