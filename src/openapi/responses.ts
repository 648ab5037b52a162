/**
 * The OpenAPI side of the one error model and the protocol headers: a route lists the error codes it can answer and
 * gets one response per status, each with the codes of that status as an enum and the headers that status carries.
 */
import { z } from "@hono/zod-openapi";
import type { OpenAPIHono, RouteConfig } from "@hono/zod-openapi";
import { ERROR_CODES, ERROR_STATUS, type ErrorCode } from "../errors";
import type { AppEnv } from "../http";

/** Response headers, declared once under components.headers and referenced by name. */
export const HEADERS = {
  "X-Request-Id": { description: "This request's id, also in every error body and log line", schema: { type: "string", format: "uuid" } },
  "Retry-After": { description: "Seconds to wait before trying again", schema: { type: "integer", minimum: 1 } },
  "RateLimit-Policy": {
    description: "The limit that applies (IETF draft-ietf-httpapi-ratelimit-headers): quota `q` per window `w` seconds",
    schema: { type: "string" },
    example: '"default";q=100;w=60',
  },
  RateLimit: {
    description: "What is left of that limit: `r` requests remaining, the window resets in `t` seconds",
    schema: { type: "string" },
    example: '"default";r=42;t=17',
  },
  "Idempotent-Replayed": {
    description: "`true` when this is the stored answer to an earlier request with the same Idempotency-Key",
    schema: { type: "string", const: "true" },
  },
  "WWW-Authenticate": { description: "The scheme to authenticate with", schema: { type: "string" }, example: 'Bearer realm="fanfare"' },
  Allow: { description: "The method the task takes", schema: { type: "string" }, example: "POST" },
  ETag: {
    description: "The active config version (its hash) the answer shows: send it as If-Match to edit from it",
    schema: { type: "string" },
    example: '"3f9a1c0d7b2e4a61"',
  },
  Location: {
    description: "Where the ticket of a queued run is read (GET /v1/tickets/{ticketId})",
    schema: { type: "string" },
    example: "/v1/tickets/t_3f6c1a9e-2b7d-4c55-9e0a-7d1b8c2f4e61",
  },
} as const;

type HeaderName = keyof typeof HEADERS;
type Headers = Exclude<NonNullable<Exclude<RouteConfig["responses"][string], { $ref: string }>["headers"]>, z.ZodObject>;

export function registerHeaders(app: OpenAPIHono<AppEnv>) {
  for (const [name, header] of Object.entries(HEADERS)) app.openAPIRegistry.registerComponent("headers", name, header);
}

const refs = (names: HeaderName[]): Headers => Object.fromEntries(names.map((n) => [n, { $ref: `#/components/headers/${n}` }]));

/** What a route's answers carry besides the body. */
export interface ResponseTraits {
  /** Counted by rate limits (ROUTE_RATE_LIMITS, a task's or a sale's own): RateLimit headers on answers. */
  rateLimited?: boolean;
  /** Takes an Idempotency-Key whose stored answer is replayed with Idempotent-Replayed. */
  replayable?: boolean;
  /** Answers with the config version it shows as ETag (the membership definitions' admin API). */
  versioned?: boolean;
}

function headersFor(status: number, traits: ResponseTraits, codes: readonly ErrorCode[] = []): Headers {
  const names: HeaderName[] = ["X-Request-Id"];
  if (status === 429 || status === 503 || codes.includes("LOCKED")) names.push("Retry-After");
  // Counted requests carry them whatever the answer: a refusal after the limit check keeps the headers it set.
  if (traits.rateLimited) names.push("RateLimit-Policy", "RateLimit");
  if (traits.replayable && status < 500 && status !== 429) names.push("Idempotent-Replayed");
  if (status === 401) names.push("WWW-Authenticate");
  if (codes.includes("METHOD_NOT_ALLOWED")) names.push("Allow");
  if (status === 202) names.push("Location");
  if (traits.versioned && status < 300) names.push("ETag");
  return refs(names);
}

/** A success response (JSON unless said otherwise) with the headers of the route's traits. */
export function success<T extends z.ZodType>(
  schema: T,
  description: string,
  traits: ResponseTraits = {},
  status = 200,
  mediaType = "application/json",
) {
  return { description, headers: headersFor(status, traits), content: { [mediaType]: { schema } } };
}

/**
 * One response per HTTP status among `codes` (code → what it means on this route), each listing exactly those codes:
 * a client can switch on `error.code`, and the response check in the tests fails on a code the route did not declare.
 */
export function errorResponses(codes: Partial<Record<ErrorCode, string>>, traits: ResponseTraits = {}) {
  const byStatus = new Map<number, [ErrorCode, string][]>();
  // A route that takes credentials can be given those of another kind.
  const all = "UNAUTHENTICATED" in codes && !("WRONG_CREDENTIALS" in codes) ? { ...codes, WRONG_CREDENTIALS: WRONG_KIND } : codes;
  for (const [code, meaning] of Object.entries(all) as [ErrorCode, string][]) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), [code, meaning]]);
  }
  const responses: Record<number, ReturnType<typeof errorResponse>> = {};
  for (const [status, entries] of byStatus) responses[status] = errorResponse(entries, traits, status);
  return responses;
}

const WRONG_KIND = "credentials of another kind: a user's token, a service key and the operator token each pass only their own routes";

/** The codes whose answers list every failing field in `details`. */
const DETAILED_CODES = new Set<ErrorCode>([
  "INVALID_PARAMS",
  "UNKNOWN_SCOPE",
  "INVALID_ATTRIBUTES",
  "UNKNOWN_EVENT_TYPE",
  "INVALID_EVENT",
  "EVENT_TOO_LATE",
  "INVALID_REFUND",
]);

/** INVALID_PARAMS lists every failing field, each by a JSON pointer into the params or body. */
const FieldErrors = z
  .array(
    z.object({
      pointer: z.string().openapi({ description: "JSON pointer (RFC 6901) to the field in the params or body", example: "/token" }),
      message: z.string(),
    }),
  )
  .optional()
  .openapi({ description: "INVALID_PARAMS, UNKNOWN_SCOPE, INVALID_ATTRIBUTES: every failing field, not only the first" });

/** CONDITIONS_NOT_MET: the condition tree's explanation, nested as the tree is. */
const ConditionDetails = z
  .object({
    explanation: z.record(z.string(), z.unknown()).openapi({
      description:
        "Every node's result: `{node, id, pass}`, with `children` (all, any, atLeast), `child` (not), `n`, `satisfied` and `gap` (atLeast), and `code`, `actual`, `expected`, `absent` (a leaf)",
      example: {
        node: "any",
        id: ".",
        pass: false,
        children: [{ node: "leaf", id: "any/0", code: "newUser", pass: false, expected: { withinDays: 30 }, absent: true }],
      },
    }),
  })
  .optional()
  .openapi({ description: "CONDITIONS_NOT_MET: why the task's conditions do not hold" });

/** INVALID_DEFINITION and DEFINITION_IN_USE: every config issue, or every holder of the definition. */
const DefinitionIssues = z
  .object({
    issues: z.array(
      z.object({
        file: z.string().openapi({ description: "The config file, or the table that holds the reference", example: "task-configs/membership.yaml" }),
        path: z.string().openapi({ description: "Where in it", example: "membership.skus.gold-2y.duration" }),
        reason: z.string(),
        pointer: z
          .string()
          .optional()
          .openapi({ description: "JSON pointer (RFC 6901) into the request body, when the issue lies there", example: "/duration" }),
      }),
    ),
  })
  .optional()
  .openapi({ description: "INVALID_DEFINITION: every issue of the edited config; DEFINITION_IN_USE: everything that holds the definition" });

function errorResponse(entries: [ErrorCode, string][], traits: ResponseTraits, status: number) {
  const codes = entries.map(([code]) => code) as [ErrorCode, ...ErrorCode[]];
  const schema = z.object({
    ok: z.literal(false),
    requestId: z.string(),
    error: z.object({
      code: z.enum(codes).openapi({ description: "Stable machine-readable code" }),
      message: z.string().openapi({ description: "The configured message for this failure" }),
      ...(codes.some((c) => DETAILED_CODES.has(c)) ? { details: FieldErrors } : {}),
      ...(codes.includes("CONDITIONS_NOT_MET") ? { details: ConditionDetails } : {}),
      ...(codes.includes("INVALID_DEFINITION") || codes.includes("DEFINITION_IN_USE") ? { details: DefinitionIssues } : {}),
    }),
  });
  return {
    description: entries.map(([code, meaning]) => `\`${code}\`${meaning ? `: ${meaning}` : ""}`).join("; "),
    headers: headersFor(status, traits, codes),
    content: {
      "application/json": {
        schema: schema.openapi({
          example: { ok: false, requestId: "5f0c6b1e-8a8e-4c1b-9d8e-2b6f3f0b7a11", error: { code: codes[0], message: entries[0]![1] || codes[0] } },
        }),
      },
    },
  };
}

/** A failure's body with any code: what a queued run's ticket holds when the run was refused. */
export const ErrorBodySchema = z
  .object({
    ok: z.literal(false),
    requestId: z.string(),
    error: z.object({ code: z.enum(ERROR_CODES), message: z.string(), details: z.union([FieldErrors, ConditionDetails, DefinitionIssues]) }),
  })
  .openapi("ErrorBody");

/** The codes every request can meet whatever the route: a storage object refusing work, a bug. */
export const ALWAYS = {
  UNAVAILABLE: "busy, or no config pushed: retry after Retry-After",
  INTERNAL: "a bug: the request id is in the logs",
} as const;

/** What a route that takes a JSON body can answer because of it. */
export const BODY_ERRORS = {
  INVALID_JSON: "the body is not JSON",
  PAYLOAD_TOO_LARGE: "the body is too large",
  UNSUPPORTED_MEDIA_TYPE: "a body that is not application/json",
} as const;
