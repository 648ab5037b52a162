/**
 * Operator API for service keys (src/service-keys): make one with a name and scopes (its secret is shown once), list
 * them, rotate one with a grace period for the secret it replaces, and revoke one.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { forgetServiceKey } from "../auth/service";
import { AppError, type FieldIssue } from "../errors";
import { database, type AppEnv } from "../http";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { createServiceKey, keySummary, listServiceKeys, revokeServiceKey, rotateServiceKey } from "../service-keys/keys";
import { isServiceScope, SCOPE_NAMES, SERVICE_SCOPES, type ServiceScope } from "../service-keys/scopes";

const DEFAULT_GRACE_SECONDS = 3600;
const MAX_GRACE_SECONDS = 7 * 24 * 3600;

const ServiceKeySchema = z
  .object({
    id: z.string().openapi({ example: "3f9a0c1d2b4e5f60" }),
    name: z.string().openapi({ example: "order-service" }),
    scopes: z.array(z.enum(SCOPE_NAMES)),
    createdAt: z.iso.datetime(),
    rotatedAt: z.iso.datetime().nullable(),
    revokedAt: z.iso.datetime().nullable(),
    lastUsedAt: z.iso.datetime().nullable().openapi({ description: "Approximate: noted at most once per isolate every SERVICE_KEY_CACHE_MS" }),
  })
  .openapi("ServiceKey");

const SecretSchema = z.string().openapi({
  description: "The key to send as `Authorization: Bearer …`. Shown only in this answer: store it now.",
  example: "fsk_3f9a0c1d2b4e5f60_q8Jm1X0pZr4tLw7yV2bN6cS9dF3gH5kA1eR0uT8iO2w",
});

const scopeList = Object.entries(SERVICE_SCOPES)
  .map(([s, what]) => `\`${s}\` (${what})`)
  .join(", ");

const KeyRequest = z
  .object({
    name: z.string().min(1).max(64).openapi({ description: "Who holds the key", example: "order-service" }),
    // Checked in the handler, so an unknown scope answers 422 UNKNOWN_SCOPE with its pointer.
    scopes: z
      .array(z.string())
      .min(1)
      .max(SCOPE_NAMES.length)
      .openapi({ description: `What the key may do: ${scopeList}`, example: ["events:write", "users:write"] }),
  })
  .strict();

const ADMIN_ERRORS = {
  INVALID_PARAMS: "a malformed body or id",
  UNAUTHENTICATED: "missing or wrong operator token",
  UNAVAILABLE: "ADMIN_TOKEN is not set, or D1 is unavailable",
  INTERNAL: ALWAYS.INTERNAL,
} as const;
const params = z.object({ keyId: z.string().regex(/^[0-9a-f]{16}$/, "not a service key id") });
const answer = <T extends z.ZodRawShape>(shape: T) => z.object({ ok: z.literal(true), requestId: z.string(), ...shape });

const routes = {
  create: createRoute({
    method: "post",
    path: "/v1/admin/service-keys",
    operationId: "createServiceKey",
    tags: ["Admin"],
    summary: "Make a service key with a name and scopes (its secret is shown once)",
    security: [{ operator: [] }],
    request: { body: { required: true, content: { "application/json": { schema: KeyRequest } } } },
    responses: {
      201: success(answer({ serviceKey: ServiceKeySchema, secret: SecretSchema }), "The key, with its secret", {}, 201),
      ...errorResponses({ ...ADMIN_ERRORS, ...BODY_ERRORS, UNKNOWN_SCOPE: "a scope that does not exist (details point at it)" }),
    },
  }),
  list: createRoute({
    method: "get",
    path: "/v1/admin/service-keys",
    operationId: "listServiceKeys",
    tags: ["Admin"],
    summary: "Every service key, revoked ones too (never their secrets)",
    security: [{ operator: [] }],
    responses: {
      200: success(answer({ serviceKeys: z.array(ServiceKeySchema) }), "The keys, oldest first"),
      ...errorResponses(ADMIN_ERRORS),
    },
  }),
  rotate: createRoute({
    method: "post",
    path: "/v1/admin/service-keys/{keyId}/rotate",
    operationId: "rotateServiceKey",
    tags: ["Admin"],
    summary: "A new secret for a key; the one it replaces stays valid for the grace period",
    security: [{ operator: [] }],
    request: {
      params,
      body: {
        required: false,
        content: {
          "application/json": {
            schema: z
              .object({
                graceSeconds: z
                  .number()
                  .int()
                  .min(0)
                  .max(MAX_GRACE_SECONDS)
                  .default(DEFAULT_GRACE_SECONDS)
                  .openapi({ description: "How long the replaced secret still works (the secret before it stops now)" }),
              })
              .strict(),
          },
        },
      },
    },
    responses: {
      200: success(
        answer({
          serviceKey: ServiceKeySchema,
          secret: SecretSchema,
          previousValidUntil: z.iso.datetime().openapi({ description: "When the replaced secret stops working" }),
        }),
        "The key, with its new secret",
      ),
      ...errorResponses({ ...ADMIN_ERRORS, ...BODY_ERRORS, NOT_FOUND: "no such key, or it is revoked" }),
    },
  }),
  revoke: createRoute({
    method: "delete",
    path: "/v1/admin/service-keys/{keyId}",
    operationId: "revokeServiceKey",
    tags: ["Admin"],
    summary: "Revoke a key for good (repeating it changes nothing)",
    security: [{ operator: [] }],
    request: { params },
    responses: {
      200: success(answer({ serviceKey: ServiceKeySchema }), "The revoked key"),
      ...errorResponses({ ...ADMIN_ERRORS, NOT_FOUND: "no such key" }),
    },
  }),
};

/** The scopes asked for, or UNKNOWN_SCOPE naming each unknown one by its pointer. */
function checkedScopes(scopes: string[]): ServiceScope[] {
  const issues: FieldIssue[] = scopes.flatMap((s, i) =>
    isServiceScope(s) ? [] : [{ pointer: `/scopes/${i}`, message: `unknown scope '${s}'; known: ${SCOPE_NAMES.join(", ")}` }],
  );
  if (issues.length > 0) throw new AppError("UNKNOWN_SCOPE", `scopes: ${issues[0]!.message}`, {}, issues);
  return [...new Set(scopes as ServiceScope[])];
}

export function registerAdminServiceKeys(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.create, async (c) => {
    const { name, scopes } = c.req.valid("json");
    const { row, key } = await createServiceKey(database(c.env), name, checkedScopes(scopes), c.get("now"));
    return c.json({ ok: true as const, requestId: c.get("requestId"), serviceKey: keySummary(row), secret: key }, 201);
  });

  app.openapi(routes.list, async (c) => {
    const rows = await listServiceKeys(database(c.env));
    return c.json({ ok: true as const, requestId: c.get("requestId"), serviceKeys: rows.map(keySummary) }, 200);
  });

  app.openapi(routes.rotate, async (c) => {
    const { keyId } = c.req.valid("param");
    // Without a body, the validator hands over {} (no default applied): the default grace.
    const graceSeconds = (c.req.valid("json") as { graceSeconds?: number }).graceSeconds ?? DEFAULT_GRACE_SECONDS;
    const now = c.get("now");
    const previousValidUntil = now + graceSeconds * 1000;
    const rotated = await rotateServiceKey(database(c.env), keyId, previousValidUntil, now);
    if (!rotated) throw new AppError("NOT_FOUND", `no service key '${keyId}' that is not revoked`);
    forgetServiceKey(keyId);
    return c.json(
      {
        ok: true as const,
        requestId: c.get("requestId"),
        serviceKey: keySummary(rotated.row),
        secret: rotated.key,
        previousValidUntil: new Date(previousValidUntil).toISOString(),
      },
      200,
    );
  });

  app.openapi(routes.revoke, async (c) => {
    const { keyId } = c.req.valid("param");
    const row = await revokeServiceKey(database(c.env), keyId, c.get("now"));
    if (!row) throw new AppError("NOT_FOUND", `no service key '${keyId}'`);
    forgetServiceKey(keyId);
    return c.json({ ok: true as const, requestId: c.get("requestId"), serviceKey: keySummary(row) }, 200);
  });
}
