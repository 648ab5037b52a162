/**
 * Operator API for risk control's lists (src/risk/lists.ts): the blacklist and the suspected list, each listed, added
 * to and removed from with a reason and the actor who did it. A change is effective in every isolate within
 * RISK_LIST_REFRESH_MS (at most 4 s).
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";
import { addToList, type ListEntry, listEntries, RISK_LISTS, removeFromList } from "../risk/lists";
import { SubjectKindSchema } from "../risk/scene-definition";
import { parseSubjectKey, subjectKey } from "../risk/subjects";

const ListSchema = z.enum(RISK_LISTS).openapi({ description: "`blacklist`: refused at the edge; `suspected`: always judged by the risk engine" });
const SubjectSchema = z
  .object({
    type: SubjectKindSchema.openapi({ description: "A user id, a device id (X-Device-Id) or a client IP address" }),
    value: z.string().min(1).max(128).openapi({ example: "alice" }),
  })
  .strict()
  .openapi("RiskSubject");
const ActorSchema = z.string().min(1).max(100).openapi({ description: "Who made the change (an operator's name)", example: "ops:lin" });
const ReasonSchema = z.string().min(1).max(500).openapi({ example: "scripted grabs from one device" });

const EntrySchema = z
  .object({
    list: ListSchema,
    subject: SubjectSchema,
    reason: z.string(),
    actor: z.string().openapi({ description: "An operator, `detector:<scene>/<detector>` or `risk-engine:<scene>`" }),
    scene: z.string().nullable(),
    evidence: z.unknown().openapi({ description: "What a detector counted or the engine answered (JSON), or null" }),
    createdAt: z.iso.datetime(),
    expiresAt: z.iso.datetime().nullable(),
    removedAt: z.iso.datetime().nullable(),
    removedBy: z.string().nullable(),
    removalReason: z.string().nullable(),
  })
  .openapi("RiskListEntry");

const ADMIN_ERRORS = {
  INVALID_PARAMS: "a malformed subject, query or body",
  NOT_FOUND: "no such list (blacklist or suspected)",
  UNAUTHENTICATED: "missing or wrong operator token",
  WRONG_CREDENTIALS: "a service key instead of the operator token",
  UNAVAILABLE: "ADMIN_TOKEN is not set, or D1 is unavailable",
  INTERNAL: ALWAYS.INTERNAL,
} as const;
const answer = <T extends z.ZodRawShape>(shape: T) => z.object({ ok: z.literal(true), requestId: z.string(), ...shape });
const subjectParams = z.object({ list: ListSchema, type: SubjectKindSchema, value: z.string().min(1).max(128) });

const routes = {
  list: createRoute({
    method: "get",
    path: "/v1/admin/risk/{list}",
    operationId: "listRiskEntries",
    tags: ["Admin"],
    summary: "A risk list's entries, newest first (active ones unless includeRemoved)",
    security: [{ operator: [] }],
    request: {
      params: z.object({ list: ListSchema }),
      query: z.object({
        type: SubjectKindSchema.optional().openapi({ description: "With value: only this subject's entry" }),
        value: z.string().min(1).max(128).optional(),
        includeRemoved: z.enum(["true", "false"]).default("false").openapi({ description: "true: removed and expired entries too" }),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
      }),
    },
    responses: {
      200: success(answer({ entries: z.array(EntrySchema) }), "The entries"),
      ...errorResponses(ADMIN_ERRORS),
    },
  }),
  add: createRoute({
    method: "post",
    path: "/v1/admin/risk/{list}",
    operationId: "addRiskEntry",
    tags: ["Admin"],
    summary: "Put a user, device or address on a risk list (again: a removed entry comes back with the new reason)",
    security: [{ operator: [] }],
    request: {
      params: z.object({ list: ListSchema }),
      body: {
        required: true,
        content: {
          "application/json": {
            schema: z
              .object({
                subject: SubjectSchema,
                reason: ReasonSchema,
                actor: ActorSchema,
                ttlSeconds: z
                  .number()
                  .int()
                  .min(60)
                  .max(366 * 86_400)
                  .optional()
                  .openapi({ description: "How long it stays listed; absent: until removed" }),
              })
              .strict(),
          },
        },
      },
    },
    responses: {
      201: success(answer({ entry: EntrySchema }), "The entry", {}, 201),
      ...errorResponses({ ...ADMIN_ERRORS, ...BODY_ERRORS }),
    },
  }),
  remove: createRoute({
    method: "delete",
    path: "/v1/admin/risk/{list}/{type}/{value}",
    operationId: "removeRiskEntry",
    tags: ["Admin"],
    summary: "Take a subject off a risk list, recording who and why",
    security: [{ operator: [] }],
    request: { params: subjectParams, query: z.object({ actor: ActorSchema, reason: ReasonSchema }) },
    responses: {
      200: success(answer({ entry: EntrySchema }), "The removed entry"),
      ...errorResponses({ ...ADMIN_ERRORS, NOT_FOUND: "no such list, or the subject is not on it" }),
    },
  }),
};

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function shown(e: ListEntry) {
  // Keys are written only through subjectKey, so each reads back.
  const subject = parseSubjectKey(e.subject)!;
  return { ...e, subject, createdAt: iso(e.createdAt)!, expiresAt: iso(e.expiresAt), removedAt: iso(e.removedAt) };
}

export function registerAdminRisk(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.list, async (c) => {
    const { list } = c.req.valid("param");
    const q = c.req.valid("query");
    if ((q.type === undefined) !== (q.value === undefined)) throw new AppError("INVALID_PARAMS", "give type and value together, or neither");
    const entries = await listEntries(c.env, list, {
      subject: q.type && q.value !== undefined ? subjectKey(q.type, q.value) : undefined,
      includeRemoved: q.includeRemoved === "true",
      limit: q.limit,
      now: Date.now(),
    });
    return c.json({ ok: true as const, requestId: c.get("requestId"), entries: entries.map(shown) }, 200);
  });

  app.openapi(routes.add, async (c) => {
    const { list } = c.req.valid("param");
    const { subject, reason, actor, ttlSeconds } = c.req.valid("json");
    const now = Date.now();
    const entry = await addToList(
      c.env,
      list,
      { subject: subjectKey(subject.type, subject.value), reason, actor, expiresAt: ttlSeconds === undefined ? null : now + ttlSeconds * 1000 },
      now,
    );
    return c.json({ ok: true as const, requestId: c.get("requestId"), entry: shown(entry) }, 201);
  });

  app.openapi(routes.remove, async (c) => {
    const { list, type, value } = c.req.valid("param");
    const { actor, reason } = c.req.valid("query");
    const entry = await removeFromList(c.env, list, subjectKey(type, value), { actor, reason }, Date.now());
    if (!entry) throw new AppError("NOT_FOUND", `${type} '${value}' is not on the ${list}`);
    return c.json({ ok: true as const, requestId: c.get("requestId"), entry: shown(entry) }, 200);
  });
}
