/**
 * Operator API for code pools: import codes (JSON, CSV or NDJSON; idempotent by import id) and read a pool's counts
 * per shard and its imports. Behind the operator token (src/auth/operator.ts).
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { IdSchema, type AppEnv } from "../http";
import { ALWAYS, errorResponses, success } from "../openapi/responses";
import { AppError, type FieldIssue } from "../errors";
import { codePoolCounts, findCodePool, importCodes } from "../codes/code-pools";

/** The most codes one import request carries (a larger stock is several imports). */
export const MAX_CODES_PER_IMPORT = 100_000;
/** The import route's body limit: 100,000 codes of up to 64 characters, as CSV or NDJSON, fit. */
export const MAX_IMPORT_BYTES = 8 * 1024 * 1024;
/** The path the import route's body limit applies to (src/app.ts). */
export const CODE_IMPORT_PATH = /^\/v1\/admin\/code-pools\/[^/]+\/imports\/[^/]+$/;
/** The media types an import accepts. */
export const IMPORT_TYPES = /^(application\/json|text\/csv|application\/x-ndjson)\s*(;|$)/i;

/** A code as operators import it: printable ASCII without spaces or commas (so CSV needs no quoting). */
const CODE = /^[\x21-\x2b\x2d-\x7e]{1,128}$/;
const CodeSchema = z.string().regex(CODE, "a code is 1-128 printable ASCII characters without spaces or commas");

const params = z.object({ poolId: IdSchema.openapi({ example: "double11-codes" }), importId: IdSchema.openapi({ example: "batch-2026-11-01" }) });
const poolParams = z.object({ poolId: IdSchema.openapi({ example: "double11-codes" }) });

const ImportJson = z
  .object({ codes: z.array(CodeSchema).min(1).max(MAX_CODES_PER_IMPORT) })
  .strict()
  .openapi("CodeImport");
const ImportResult = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    pool: z.string(),
    importId: z.string(),
    received: z.number().int().openapi({ description: "Codes in the request" }),
    duplicatesInRequest: z.number().int().openapi({ description: "Repeats within the request, skipped" }),
    added: z.number().int().openapi({ description: "Codes new to the pool" }),
    alreadyInPool: z.number().int().openapi({ description: "Codes the pool already held (an earlier import), skipped" }),
    parts: z.number().int().openapi({ description: "Calls to the pool's shards the import took" }),
  })
  .openapi("CodeImportResult");
const Counts = {
  imported: z.number().int(),
  issued: z.number().int(),
  held: z.number().int().openapi({ description: "Of the issued, those held for a run's commit not yet known to have used them" }),
  consumed: z.number().int(),
  returned: z.number().int(),
  remaining: z.number().int(),
};
const PoolStats = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    pool: z.string(),
    name: z.string(),
    kind: z.enum(["issue", "activate"]),
    lowStock: z.object({ threshold: z.number().int(), alert: z.string() }).nullable(),
    ...Counts,
    shards: z.array(z.object({ shard: z.number().int(), ...Counts })),
    imports: z.array(z.object({ importId: z.string(), added: z.number().int(), duplicates: z.number().int(), at: z.iso.datetime() })),
  })
  .openapi("CodePoolStats");

const ADMIN_ERRORS = {
  UNAUTHENTICATED: "missing or wrong operator token",
  NOT_FOUND: "no such code pool in the active config",
  UNAVAILABLE: "ADMIN_TOKEN is not set, or a shard did not answer (repeat the request to finish)",
  INTERNAL: ALWAYS.INTERNAL,
} as const;

const routes = {
  import: createRoute({
    method: "post",
    path: "/v1/admin/code-pools/{poolId}/imports/{importId}",
    operationId: "importCodes",
    tags: ["Admin"],
    summary: "Import codes into a code pool",
    description:
      "The body is `{codes: [...]}` (application/json), one code per line (text/csv: the first field of each line, a " +
      "header line `code` is skipped) or one JSON string or `{code}` per line (application/x-ndjson); at most " +
      `${MAX_CODES_PER_IMPORT} codes and ${MAX_IMPORT_BYTES / 1024 / 1024} MB. Each code is kept by the shard its ` +
      "hash names, in parts of a few thousand. Repeats within the request and codes the pool already holds are skipped " +
      "and counted. The same import id again answers the same counts and adds nothing; with other codes it is refused.",
    security: [{ operator: [] }],
    request: {
      params,
      body: {
        required: true,
        content: {
          // By reference: the handler reads every type itself (a zod schema here would be applied to CSV bodies too).
          "application/json": { schema: { $ref: "#/components/schemas/CodeImport" } },
          "text/csv": { schema: z.string().openapi({ example: "code\nAAA-111\nBBB-222\n" }) },
          "application/x-ndjson": { schema: z.string().openapi({ example: '"AAA-111"\n{"code":"BBB-222"}\n' }) },
        },
      },
    },
    responses: {
      200: success(ImportResult, "Imported (or the same import again)"),
      ...errorResponses({
        ...ADMIN_ERRORS,
        INVALID_JSON: "a JSON body (or an NDJSON line) that is not JSON",
        INVALID_PARAMS: "a malformed code (with its place), no codes, more than the limit, or a malformed id",
        PAYLOAD_TOO_LARGE: `the body is over ${MAX_IMPORT_BYTES / 1024 / 1024} MB`,
        UNSUPPORTED_MEDIA_TYPE: "a body that is not JSON, CSV or NDJSON",
        IDEMPOTENCY_MISMATCH: "the import id was used with other codes",
      }),
    },
  }),
  stats: createRoute({
    method: "get",
    path: "/v1/admin/code-pools/{poolId}",
    operationId: "getCodePool",
    tags: ["Admin"],
    summary: "A code pool's counts (issued + consumed + remaining = imported), per shard and in all, and its imports",
    security: [{ operator: [] }],
    request: { params: poolParams },
    responses: { 200: success(PoolStats, "The pool's counts"), ...errorResponses(ADMIN_ERRORS) },
  }),
};

/** The codes of an import body, by its media type; every malformed one is reported with its place, nothing imported. */
export async function importBody(type: string, body: { json(): Promise<unknown>; text(): Promise<string> }): Promise<string[]> {
  let codes: unknown[];
  let pointer: (i: number) => string;
  if (/^application\/json/i.test(type)) {
    const parsed = ImportJson.safeParse(await body.json());
    if (!parsed.success) {
      const details = parsed.error.issues.slice(0, 20).map((i) => ({ pointer: `/${i.path.join("/")}`, message: i.message }));
      throw new AppError("INVALID_PARAMS", `${details[0]!.pointer}: ${details[0]!.message}`, {}, details);
    }
    return parsed.data.codes;
  } else {
    const lines = (await body.text()).split(/\r?\n/);
    const csv = /^text\/csv/i.test(type);
    const numbered = lines.map((line, i) => ({ line, n: i + 1 })).filter((l) => l.line.trim() !== "");
    if (csv && numbered[0]?.line.trim().toLowerCase() === "code") numbered.shift();
    codes = numbered.map(({ line, n }) => {
      if (csv) return line.split(",")[0]!.trim();
      try {
        const v = JSON.parse(line) as unknown;
        return typeof v === "object" && v !== null && "code" in v ? (v as { code: unknown }).code : v;
      } catch {
        throw new AppError("INVALID_JSON", `line ${n} is not JSON`);
      }
    });
    pointer = (i) => `/lines/${numbered[i]!.n}`;
  }
  if (codes.length === 0) throw new AppError("INVALID_PARAMS", "the import holds no codes");
  if (codes.length > MAX_CODES_PER_IMPORT) throw new AppError("INVALID_PARAMS", `at most ${MAX_CODES_PER_IMPORT} codes per import`);
  const issues: FieldIssue[] = [];
  codes.forEach((c, i) => {
    if (issues.length < 20 && (typeof c !== "string" || !CODE.test(c)))
      issues.push({ pointer: pointer(i), message: "a code is 1-128 printable ASCII characters without spaces or commas" });
  });
  if (issues.length > 0) throw new AppError("INVALID_PARAMS", `${issues[0]!.pointer}: ${issues[0]!.message}`, {}, issues);
  return codes as string[];
}

export function registerAdminCodePools(app: OpenAPIHono<AppEnv>) {
  app.openAPIRegistry.register("CodeImport", ImportJson);
  app.openapi(routes.import, async (c) => {
    const { poolId, importId } = c.req.valid("param");
    const pool = await findCodePool(c.env, poolId);
    const codes = await importBody(c.req.header("content-type") ?? "", c.req);
    const result = await importCodes(c.env, pool, importId, codes, c.get("now"));
    return c.json({ ok: true as const, requestId: c.get("requestId"), pool: pool.id, importId, ...result }, 200);
  });

  app.openapi(routes.stats, async (c) => {
    const pool = await findCodePool(c.env, c.req.valid("param").poolId);
    const { totals, shards, imports } = await codePoolCounts(c.env, pool);
    return c.json(
      {
        ok: true as const,
        requestId: c.get("requestId"),
        pool: pool.id,
        name: pool.name,
        kind: pool.kind,
        lowStock: pool.lowStock,
        ...totals,
        shards,
        imports: imports.map((i) => ({ ...i, at: new Date(i.at).toISOString() })),
      },
      200,
    );
  });
}
