/**
 * Operator API for user segments: upload a static segment's list (idempotent by upload id, replacing the list at
 * once), read a segment's list version and size, and ask whether a user is in a segment now. Behind the operator token.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { IdSchema, type AppEnv } from "../http";
import { ALWAYS, errorResponses, success } from "../openapi/responses";
import { AppError } from "../errors";
import { findActiveConfig } from "../config/store";
import type { Env } from "../env";
import { listStatus, MAX_IDS_PER_UPLOAD, MAX_UPLOAD_BYTES, uploadList } from "../segments/static-lists";
import { attributeReader, segmentMember } from "../segments/decision";

/** The path the upload route's body limit applies to (src/app.ts). */
export const SEGMENT_UPLOAD_PATH = /^\/v1\/admin\/segments\/[^/]+\/uploads\/[^/]+$/;
/** The media types an upload accepts. */
export const SEGMENT_UPLOAD_TYPES = /^(application\/json|text\/plain)\s*(;|$)/i;

const segmentParams = z.object({ segmentId: IdSchema.openapi({ example: "vipList" }) });
const uploadParams = segmentParams.extend({ uploadId: IdSchema.openapi({ example: "vip-2026-11-01" }) });
const memberParams = segmentParams.extend({
  userId: z.string().min(1).max(128).openapi({ description: "The user id (the `sub` of the user's tokens)", example: "u-1001" }),
});

const UploadJson = z
  .object({ userIds: z.array(z.string()).min(1).max(MAX_IDS_PER_UPLOAD) })
  .strict()
  .openapi("SegmentUpload");
const ListFields = {
  version: z.string().openapi({ description: "The upload id that wrote the list" }),
  size: z.number().int().openapi({ description: "Distinct user ids on the list" }),
  shards: z.number().int().openapi({ description: "Hashed shards the list is kept in (one D1 row each)" }),
  bytes: z.number().int().openapi({ description: "Stored size of the ids" }),
  activatedAt: z.iso.datetime(),
};
const UploadResult = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    segment: z.string(),
    uploadId: z.string(),
    received: z.number().int().openapi({ description: "User ids in the request" }),
    duplicates: z.number().int().openapi({ description: "Repeats within the request, kept once" }),
    replayed: z.boolean().openapi({ description: "The same upload again: its first answer, nothing written" }),
    ...ListFields,
  })
  .openapi("SegmentUploadResult");
const SegmentView = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    segment: z.string(),
    kind: z.enum(["rule", "static", "external"]),
    priority: z.number().int(),
    description: z.string().optional(),
    list: z.object(ListFields).nullable().optional().openapi({ description: "A static segment's current list (null: none uploaded yet)" }),
  })
  .openapi("UserSegment");
const Membership = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    segment: z.string(),
    userId: z.string(),
    member: z.boolean(),
    source: z.enum(["rule", "list", "service", "cache", "fallback"]).openapi({
      description: "rule: the stored profile judged by the segment's tree; list: the static list; service, cache, fallback: the crowd service",
    }),
    version: z.string().nullable().optional().openapi({ description: "The static list's version that answered" }),
  })
  .openapi("SegmentMembership");

const ADMIN_ERRORS = {
  UNAUTHENTICATED: "missing or wrong operator token",
  NOT_FOUND: "no such segment in the active config (or, for an upload, not a static one)",
  UNAVAILABLE: "ADMIN_TOKEN is not set, or D1 did not answer (repeat the request to finish)",
  INTERNAL: ALWAYS.INTERNAL,
} as const;

const routes = {
  upload: createRoute({
    method: "post",
    path: "/v1/admin/segments/{segmentId}/uploads/{uploadId}",
    operationId: "uploadSegmentList",
    tags: ["Admin"],
    summary: "Replace a static segment's list of user ids",
    description:
      "The body is one user id per line (text/plain) or `{userIds: [...]}` (application/json): at most " +
      `${MAX_IDS_PER_UPLOAD} ids and ${MAX_UPLOAD_BYTES / 1024 / 1024} MB. Every id is checked first: one malformed id ` +
      "refuses the whole upload (each bad one named by its line or index) and the current list stays. The new list is " +
      "written beside the old one and replaces it in one step, so checks see one list or the other, never a mix; " +
      "isolates pick the new version up within 5 s. Uploads of one segment finishing together each replace the list " +
      "in use when they finish: the last to finish stays, and the rows of every list replaced are deleted. The same " +
      "upload id again answers the same result and writes nothing; with another body it is refused.",
    security: [{ operator: [] }],
    request: {
      params: uploadParams,
      body: {
        required: true,
        content: {
          // By reference: the handler reads both types itself.
          "application/json": { schema: { $ref: "#/components/schemas/SegmentUpload" } },
          "text/plain": { schema: z.string().openapi({ example: "u-1001\nu-1002\n" }) },
        },
      },
    },
    responses: {
      200: success(UploadResult, "The list now in use (or the same upload again)"),
      ...errorResponses({
        ...ADMIN_ERRORS,
        INVALID_JSON: "a JSON body that is not JSON",
        INVALID_PARAMS: "malformed user ids (each with its place; nothing written), or no ids",
        PAYLOAD_TOO_LARGE: `the body is over ${MAX_UPLOAD_BYTES / 1024 / 1024} MB, or holds more than ${MAX_IDS_PER_UPLOAD} ids (nothing written)`,
        LOCKED: "other uploads of the segment kept replacing its list meanwhile: send the same upload again to finish it",
        UNSUPPORTED_MEDIA_TYPE: "a body that is not text/plain or JSON",
        IDEMPOTENCY_MISMATCH: "the upload id was used with another body",
      }),
    },
  }),
  get: createRoute({
    method: "get",
    path: "/v1/admin/segments/{segmentId}",
    operationId: "getSegment",
    tags: ["Admin"],
    summary: "A segment's kind and priority; a static segment's list version, size and stored size",
    security: [{ operator: [] }],
    request: { params: segmentParams },
    responses: { 200: success(SegmentView, "The segment"), ...errorResponses(ADMIN_ERRORS) },
  }),
  member: createRoute({
    method: "get",
    path: "/v1/admin/segments/{segmentId}/members/{userId}",
    operationId: "getSegmentMembership",
    tags: ["Admin"],
    summary: "Whether a user is in a segment now (a rule segment reads the user's stored profile)",
    security: [{ operator: [] }],
    request: { params: memberParams },
    responses: { 200: success(Membership, "The answer and where it came from"), ...errorResponses(ADMIN_ERRORS) },
  }),
};

async function findSegment(env: Env, id: string) {
  const config = await findActiveConfig(env);
  const segment = config?.segments.get(id);
  if (!config || !segment) throw new AppError("NOT_FOUND", `no segment '${id}' in the active config`);
  return { config, segment };
}

const listView = (l: { version: string; size: number; shards: number; bytes: number; activatedAt: number }) => ({
  ...l,
  activatedAt: new Date(l.activatedAt).toISOString(),
});

export function registerAdminSegments(app: OpenAPIHono<AppEnv>) {
  app.openAPIRegistry.register("SegmentUpload", UploadJson);
  app.openapi(routes.upload, async (c) => {
    const { segmentId, uploadId } = c.req.valid("param");
    const { segment } = await findSegment(c.env, segmentId);
    if (segment.kind !== "static")
      throw new AppError("NOT_FOUND", `segment '${segmentId}' is a ${segment.kind} segment: only a static one takes uploads`);
    const result = await uploadList(c.env, segmentId, uploadId, c.req.header("content-type") ?? "", await c.req.text(), c.get("now"));
    return c.json({ ok: true as const, requestId: c.get("requestId"), segment: segmentId, uploadId, ...listView(result) }, 200);
  });

  app.openapi(routes.get, async (c) => {
    const { segment } = await findSegment(c.env, c.req.valid("param").segmentId);
    const list = segment.kind === "static" ? await listStatus(c.env, segment.id) : undefined;
    return c.json(
      {
        ok: true as const,
        requestId: c.get("requestId"),
        segment: segment.id,
        kind: segment.kind,
        priority: segment.priority,
        ...(segment.description && { description: segment.description }),
        ...(segment.kind === "static" && { list: list ? listView(list) : null }),
      },
      200,
    );
  });

  app.openapi(routes.member, async (c) => {
    const { segmentId, userId } = c.req.valid("param");
    const { config, segment } = await findSegment(c.env, segmentId);
    // No token here: the user's groups are unknown, and a rule reads the stored profile alone.
    const user = { id: userId, groups: [] };
    const check = await segmentMember(c.env, segment, user, attributeReader(c.env, config, user), c.get("now"));
    return c.json(
      {
        ok: true as const,
        requestId: c.get("requestId"),
        segment: segment.id,
        userId,
        member: check.member,
        source: check.source,
        ...(check.version !== undefined && { version: check.version }),
      },
      200,
    );
  });
}
