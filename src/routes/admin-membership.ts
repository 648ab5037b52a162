/**
 * Operator API for membership definitions (src/membership/definitions.ts): read the compiled program and catalog,
 * set or remove an identity type, a SKU, a material or a benefit. Each change is a new config version, activated as
 * `tasks:push` activates one, from the version the operator read (`If-Match`).
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { BenefitSchema, type Benefit } from "../benefits/benefit";
import { benefitOf } from "../benefits/catalog";
import { ISSUANCES, MATERIAL_TYPES, MaterialSchema, type Material } from "../benefits/material";
import { OPERATOR_KEY_ID } from "../auth/operator";
import { bundleHash, checkConfig } from "../config/compile";
import type { CompiledConfig } from "../config/compiled";
import { ConfigIdSchema } from "../config/id";
import { activateOver, activeBundle, currentConfig } from "../config/store";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import { DEFINITION_KINDS, type DefinitionKind, definitionIssue, editDefinition, editNote, holdersOutsideConfig } from "../membership/definitions";
import { IdentityTypeSchema, SEGMENT_SOURCES, SkuSchema, type IdentityType, type Sku } from "../membership/program";
import { ALWAYS, BODY_ERRORS, errorResponses, success } from "../openapi/responses";

const iso = (ms: number) => new Date(ms).toISOString();

const IdentityTypeView = z.object({ id: z.string(), name: z.string(), rank: z.number().int() }).openapi("IdentityType");
const SkuView = z
  .object({
    id: z.string(),
    name: z.string(),
    identityType: z.string(),
    duration: z.string().nullable().openapi({ description: "P<n>D, P<n>M or P<n>Y; null when the SKU has a fixed end", example: "P1M" }),
    until: z.iso.datetime().nullable().openapi({ description: "The fixed end, when it has one" }),
    stack: z.enum(["extend", "parallel"]),
    requires: z.object({ identityType: z.string().optional(), sku: z.string().optional(), scope: z.enum(["active", "ever"]) }).nullable(),
    conflicts: z.array(z.string()).openapi({ description: "Both ways: the types it names and those whose SKUs name its type" }),
    sources: z.array(z.enum(SEGMENT_SOURCES)),
    channels: z.array(z.string()).nullable(),
  })
  .openapi("Sku");
const MaterialView = z
  .object({
    id: z.string(),
    version: z.string().openapi({ description: "Its content hash: an edit is a new version, what was granted keeps its own" }),
    type: z.enum(MATERIAL_TYPES),
    name: z.string(),
    supplier: z.string(),
    faceValue: z.number().int(),
    issuance: z.enum(ISSUANCES),
    coupon: z.object({ couponSn: z.string(), channel: z.string() }).optional(),
    codePool: z.string().optional(),
    discount: z.record(z.string(), z.unknown()).optional(),
    partner: z.string().optional(),
  })
  .openapi("Material");
const BenefitView = z
  .object({
    id: z.string(),
    title: z.string(),
    order: z.number().int(),
    material: z.object({ id: z.string(), version: z.string() }),
    entitles: z.object({
      identityTypes: z.array(z.string()).nullable(),
      minRank: z.number().int().nullable(),
      sources: z.array(z.enum(SEGMENT_SOURCES)).nullable(),
      channels: z.array(z.string()).nullable(),
    }),
    window: z.object({ beginTime: z.iso.datetime(), endTime: z.iso.datetime() }).nullable(),
    price: z.object({ program: z.string(), points: z.number().int() }).nullable(),
    quota: z.object({ perMonth: z.number().int().optional(), perSegment: z.number().int().optional() }).nullable(),
  })
  .openapi("Benefit");

const skuView = (s: Sku): z.infer<typeof SkuView> => ({
  id: s.id,
  name: s.name,
  identityType: s.identityType,
  duration: "unit" in s.term ? `P${s.term.n}${s.term.unit}` : null,
  until: "until" in s.term ? iso(s.term.until) : null,
  stack: s.stack,
  requires: s.requires ?? null,
  conflicts: s.conflicts,
  sources: s.sources,
  channels: s.channels,
});
const benefitView = (b: Benefit): z.infer<typeof BenefitView> => ({
  id: b.id,
  title: b.title,
  order: b.order,
  material: { id: b.material.id, version: b.material.version },
  entitles: b.entitles,
  window: b.window && { beginTime: iso(b.window.begin), endTime: iso(b.window.end) },
  price: b.price,
  quota: b.quota,
});

/** Each kind: its body's schema (documented, checked by the compile), its answer's, and how to find it compiled. */
const KINDS = {
  "identity-types": {
    one: "IdentityType",
    body: IdentityTypeSchema,
    view: IdentityTypeView,
    find: (c: CompiledConfig, id: string): IdentityType | undefined => c.membership?.identityTypes[id],
  },
  skus: {
    one: "Sku",
    body: SkuSchema,
    view: SkuView,
    find: (c: CompiledConfig, id: string) => {
      const s = c.membership?.skus[id];
      return s && skuView(s);
    },
  },
  materials: {
    one: "Material",
    body: MaterialSchema,
    view: MaterialView,
    find: (c: CompiledConfig, id: string): Material | undefined => c.benefits?.materials[id],
  },
  benefits: {
    one: "Benefit",
    body: BenefitSchema,
    view: BenefitView,
    find: (c: CompiledConfig, id: string) => {
      const b = benefitOf(c.benefits, id);
      return b && benefitView(b);
    },
  },
} satisfies Record<DefinitionKind, unknown>;

const MembershipView = z
  .object({
    ok: z.literal(true),
    requestId: z.string(),
    version: z.string().openapi({ description: "The active config version shown (also the ETag)" }),
    program: z
      .object({ timezone: z.string(), reminderDays: z.number().int().nullable(), preconditionLost: z.enum(["keep", "revoke"]) })
      .nullable()
      .openapi({ description: "null: the bundle declares no membership program yet" }),
    identityTypes: z.array(IdentityTypeView),
    skus: z.array(SkuView),
    materials: z.array(MaterialView),
    benefits: z.array(BenefitView).openapi({ description: "In their rights-center order" }),
  })
  .openapi("MembershipDefinitions");

const IfMatch = z.object({
  "if-match": z.string().max(200).optional().openapi({
    description: "The version (ETag) the edit was made from: a version no longer active is refused with VERSION_MISMATCH and nothing changes",
    example: '"3f9a1c0d7b2e4a61"',
  }),
  "x-fanfare-actor": z
    .string()
    .regex(/^[\x20-\x7e]{1,64}$/, "1-64 printable ASCII characters")
    .optional()
    .openapi({ description: "Who is making the change, recorded in the version's note beside `operator`", example: "alice" }),
});

const EDIT_ERRORS = {
  INVALID_PARAMS: "a malformed If-Match or X-Fanfare-Actor",
  UNAUTHENTICATED: "missing or wrong operator token",
  NOT_FOUND: "a malformed id",
  VERSION_MISMATCH: "If-Match names a version that is no longer active (or another edit landed first): read again",
  ...ALWAYS,
  UNAVAILABLE: "no config pushed yet, ADMIN_TOKEN unset, or D1 busy",
} as const;

const editAnswer = <T extends z.ZodType>(view: T) =>
  z.object({
    ok: z.literal(true),
    requestId: z.string(),
    version: z.string().openapi({ description: "The active version after the edit (also the ETag)" }),
    previousVersion: z.string(),
    changed: z.boolean().openapi({ description: "False: the definition was already so; no version was made" }),
    definition: view,
  });
const DeleteAnswer = z
  .object({ ok: z.literal(true), requestId: z.string(), version: z.string(), previousVersion: z.string(), deleted: z.string() })
  .openapi("DefinitionDeleted");

const readRoute = createRoute({
  method: "get",
  path: "/v1/admin/membership",
  operationId: "getMembershipDefinitions",
  tags: ["Admin"],
  summary: "The membership program and benefits catalog of the active version, compiled",
  description:
    "Identity types, SKUs, materials (with their versions) and benefits as the running config has them. The ETag is the version: send it as If-Match with an edit.",
  security: [{ operator: [] }],
  responses: {
    200: success(MembershipView, "The definitions", { versioned: true }),
    ...errorResponses({ UNAUTHENTICATED: "missing or wrong operator token", ...ALWAYS }),
  },
});

/** The If-Match version (`"hash"`, `W/"hash"` or a bare hash); undefined when absent or `*`. */
function ifMatch(header: string | undefined): string | undefined {
  const v = header
    ?.trim()
    .replace(/^W\//, "")
    .replace(/^"(.*)"$/, "$1");
  return v === undefined || v === "*" ? undefined : v;
}

/** Attempts at an edit without If-Match when other edits keep landing first. */
const EDIT_ATTEMPTS = 3;

interface Edit {
  method: "PUT" | "DELETE";
  kind: DefinitionKind;
  id: string;
  value: unknown;
  expected: string | undefined;
  actor: string;
}

/**
 * Applies an edit to the active version: compiled whole before anything is stored, activated only over the version
 * it was made from. Without If-Match, an edit that another one overtook is made again from the newer version.
 */
async function applyEdit(env: AppEnv["Bindings"], e: Edit) {
  for (let attempt = 1; ; attempt++) {
    const active = await activeBundle(env);
    if (!active) throw new AppError("UNAVAILABLE", "no task config has been pushed yet: run `npm run tasks:push` first");
    if (e.expected !== undefined && e.expected !== active.hash)
      throw new AppError("VERSION_MISMATCH", `version ${e.expected} is not the active one (${active.hash}): read the definitions again`);
    const edit = editDefinition(active.files, e.kind, e.id, e.value);
    const noun = DEFINITION_KINDS[e.kind].noun;
    if (e.method === "DELETE" && !edit.existed) throw new AppError("NOT_FOUND", `no ${noun} '${e.id}'`);
    const hash = await bundleHash(edit.files);
    const checked = checkConfig(edit.files, hash);
    if (!checked.config) {
      const issues = checked.issues.map((i) => definitionIssue(i, edit.file, e.kind, e.id));
      if (e.method === "DELETE") throw new AppError("DEFINITION_IN_USE", `${noun} '${e.id}' is still named: ${issues[0]!.path}`, {}, { issues });
      throw new AppError("INVALID_DEFINITION", `${issues[0]!.path}: ${issues[0]!.reason}`, {}, { issues });
    }
    if (e.method === "DELETE") {
      const holders = await holdersOutsideConfig(env, e.kind, e.id);
      if (holders.length > 0) throw new AppError("DEFINITION_IN_USE", `${noun} '${e.id}': ${holders[0]!.reason}`, {}, { issues: holders });
    }
    const changed = hash !== active.hash;
    if (changed && !(await activateOver(env, active.hash, hash, { files: edit.files }, editNote(e.method, e.kind, e.id, e.actor)))) {
      if (e.expected !== undefined || attempt === EDIT_ATTEMPTS)
        throw new AppError("VERSION_MISMATCH", `another change became active while this one was made from ${active.hash}: read again`);
      continue;
    }
    return { config: checked.config, version: hash, previousVersion: active.hash, changed, created: !edit.existed };
  }
}

function editRoutes(kind: DefinitionKind) {
  const k = KINDS[kind];
  const noun = DEFINITION_KINDS[kind].noun;
  const params = z.object({ id: ConfigIdSchema.openapi({ description: `The ${noun}'s id`, example: "gold-2y" }) });
  const body = { $ref: `#/components/schemas/${k.one}Definition` };
  const put = createRoute({
    method: "put",
    path: `/v1/admin/membership/${kind}/{id}`,
    operationId: `put${k.one}`,
    tags: ["Admin"],
    summary: `Define or replace a ${noun}: a new config version`,
    description:
      `The body holds the ${noun}'s fields as the membership file's YAML does (docs/task-config.md). The whole bundle ` +
      "is compiled with it before anything is stored: a problem answers INVALID_DEFINITION with every issue's path. " +
      "The new version is activated over the one the edit was made from, with a note naming the operator.",
    security: [{ operator: [] }],
    request: { params, headers: IfMatch, body: { required: true, content: { "application/json": { schema: body } } } },
    responses: {
      200: success(editAnswer(k.view).openapi(`${k.one}Edit`), `Replaced (or already so)`, { versioned: true }),
      201: success(editAnswer(k.view).openapi(`${k.one}Edit`), "Defined", { versioned: true }, 201),
      ...errorResponses({ ...EDIT_ERRORS, ...BODY_ERRORS, INVALID_DEFINITION: "the bundle with this definition does not compile" }),
    },
  });
  const del = createRoute({
    method: "delete",
    path: `/v1/admin/membership/${kind}/{id}`,
    operationId: `delete${k.one}`,
    tags: ["Admin"],
    summary: `Remove a ${noun} nothing names: a new config version`,
    description:
      kind === "skus" || kind === "identity-types"
        ? `Refused with DEFINITION_IN_USE while anything in the config names it, or once it was granted to a user.`
        : kind === "benefits"
          ? "Refused with DEFINITION_IN_USE while a partner supplies it."
          : "Refused with DEFINITION_IN_USE while a benefit offers it.",
    security: [{ operator: [] }],
    request: { params, headers: IfMatch },
    responses: {
      200: success(DeleteAnswer, "Removed", { versioned: true }),
      ...errorResponses({
        ...EDIT_ERRORS,
        NOT_FOUND: `no such ${noun}, or a malformed id`,
        DEFINITION_IN_USE: "named by other definitions or partners, or granted: details lists each",
      }),
    },
  });
  return { put, del };
}

/** Who made an edit, for the version note: the operator token's key id and the actor it names. */
const actorOf = (named: string | undefined) => (named ? `${OPERATOR_KEY_ID} (${named})` : OPERATOR_KEY_ID);

/** Registered after the operator check on /v1/admin/* (src/app.ts), which must run first. */
export function registerAdminMembership(app: OpenAPIHono<AppEnv>) {
  for (const kind of Object.keys(KINDS) as DefinitionKind[]) app.openAPIRegistry.register(`${KINDS[kind].one}Definition`, KINDS[kind].body);

  app.openapi(readRoute, async (c) => {
    const config = await currentConfig(c.env);
    const m = config.membership;
    c.header("etag", `"${config.version}"`);
    return c.json(
      {
        ok: true as const,
        requestId: c.get("requestId"),
        version: config.version,
        program: m ? { timezone: m.timezone, reminderDays: m.reminderDays, preconditionLost: m.preconditionLost } : null,
        identityTypes: Object.values(m?.identityTypes ?? {}),
        skus: Object.values(m?.skus ?? {}).map(skuView),
        materials: Object.values(config.benefits?.materials ?? {}),
        benefits: (config.benefits?.benefits ?? []).map(benefitView),
      },
      200,
    );
  });

  for (const kind of Object.keys(KINDS) as DefinitionKind[]) {
    const { put, del } = editRoutes(kind);
    app.openapi(put, async (c) => {
      const { id } = c.req.valid("param");
      const headers = c.req.valid("header");
      let value: unknown;
      try {
        value = await c.req.json();
      } catch {
        throw new AppError("INVALID_JSON", "the request body is not valid JSON");
      }
      const r = await applyEdit(c.env, {
        method: "PUT",
        kind,
        id,
        value,
        expected: ifMatch(headers["if-match"]),
        actor: actorOf(headers["x-fanfare-actor"]),
      });
      c.header("etag", `"${r.version}"`);
      const answer = {
        ok: true as const,
        requestId: c.get("requestId"),
        version: r.version,
        previousVersion: r.previousVersion,
        changed: r.changed,
        definition: KINDS[kind].find(r.config, id)!,
      };
      return r.created ? c.json(answer, 201) : c.json(answer, 200);
    });
    app.openapi(del, async (c) => {
      const { id } = c.req.valid("param");
      const headers = c.req.valid("header");
      const r = await applyEdit(c.env, {
        method: "DELETE",
        kind,
        id,
        value: undefined,
        expected: ifMatch(headers["if-match"]),
        actor: actorOf(headers["x-fanfare-actor"]),
      });
      c.header("etag", `"${r.version}"`);
      return c.json({ ok: true as const, requestId: c.get("requestId"), version: r.version, previousVersion: r.previousVersion, deleted: id }, 200);
    });
  }
}
