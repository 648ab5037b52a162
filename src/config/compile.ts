/**
 * Task configs: YAML files → zod-checked, typed activities, once per pushed version. Every problem is reported
 * with its file, its path inside the file and the reason, and a config with any problem never reaches a request.
 */
import { type Document, isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { ArgsError, type CompileContext, type Placed } from "../engine/define";
import * as registry from "../engine/registry";
import { own, type ChanceKind, type CompiledActivity, type CompiledConfig, type CompiledRule, type CompiledTask } from "./compiled";
import { compileProfileFile, isProfileFile, type ProfileSchema } from "../users/profile-definition";
import { parseRule, splitRules } from "./request-rules";
import { ManagedPoolSchema, PoolFieldsSchema, poolDefinition, type PoolDefinition } from "../prizes/pool-definition";
import { EVENTS_NAMESPACE, IntakeSchema, TICKETS_NAMESPACE } from "../intake/intake-mode";
import { RateLimitSchema } from "../rate-limit/rule";
import { saleDefinition, SaleFieldsSchema, type SaleDefinition } from "../sales/sale-definition";
import { ConfigIdSchema } from "./id";
import { didYouMean, knownKeys } from "./suggest";
import { innerWindow, isTimeZone, notATime, parseActivityTime, parseDuration } from "./time";
import { sha256Hex } from "../sharding";
import { compileTree } from "../engine/conditions/tree";
import { compileRewardTree, NO_REWARDS } from "../engine/reward-tree/tree";
import { EVENT_TREES, TASK_TREES } from "../engine/conditions/facts";
import { keepsProgress } from "../engine/conditions/progress";
import type { ParticipationCount } from "../engine/conditions/define";
import { pointProgram, PointProgramSchema, PointProgramsSchema, type PointProgram } from "../points/program";
import { type BenefitCatalog, compileCatalog } from "../benefits/catalog";
import { claimsActivitySource } from "../benefits/claims";
import { compileMembershipFile, isMembershipFile, type MembershipProgram, skuOf } from "../membership/program";
import { codePool, CodePoolSchema, CodePoolsSchema, type CodePool } from "../codes/code-pool-definition";
import { riskScene, RiskSceneSchema, RiskScenesSchema, sceneNotDeclared, type RiskScene } from "../risk/scene-definition";
import { risk as riskValidator } from "../engine/validators/risk";
import { compileSegment, SegmentSchema, SegmentsSchema, type UserSegment } from "../segments/segment-definition";
import { BUILT_IN_EVENT_TYPES, compileEventType, EventTypeNameSchema, EventTypeSchema, type EventType } from "../events/event-types";

export interface ConfigFile {
  name: string;
  source: string;
}

export interface ConfigIssue {
  file: string;
  path: string;
  reason: string;
  /** Where in the file (1-based), when the path leads to something written there. */
  line?: number;
  column?: number;
}

export class ConfigError extends Error {
  constructor(readonly issues: ConfigIssue[]) {
    super(issues.map((i) => `${i.file}${i.line ? `:${i.line}:${i.column}` : ""}: ${i.path || "(root)"}: ${i.reason}`).join("\n"));
    this.name = "ConfigError";
  }
}

const Id = ConfigIdSchema;

/** A component in a task: a bare code, or `{code: args}` where args may be `$params.<path>`. */
const ComponentRef = z.union([
  z.string().min(1),
  z.record(z.string(), z.unknown()).refine((o) => Object.keys(o).length === 1, "name exactly one component per entry"),
]);
const ComponentList = z.union([ComponentRef, z.array(ComponentRef)]);

const RequestRule = z
  .object({
    field: z.string().min(1),
    rule: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    method: z
      .string()
      .transform((m) => m.toUpperCase())
      .pipe(z.enum(["GET", "POST"]))
      .optional(),
    message: z.string().min(1).optional(),
  })
  .strict();

const Task = z
  .object({
    name: z.string().min(1).optional(),
    method: z
      .string()
      .transform((m) => m.toUpperCase())
      .pipe(z.enum(["GET", "POST"]))
      .default("POST"),
    request: z.array(RequestRule).default([]),
    params: z.record(z.string(), z.unknown()).default({}),
    validator: z.array(ComponentRef).default([]),
    // A condition tree, compiled on its own (src/engine/conditions/tree.ts) so each problem has its own path.
    when: z.unknown().optional(),
    command: ComponentList.optional(),
    // A reward tree, compiled on its own (src/engine/reward-tree/tree.ts) so each problem has its own path.
    reward: z.unknown().optional(),
    afterCommand: ComponentList.optional(),
    rateLimit: RateLimitSchema.optional(),
    intake: IntakeSchema,
    /** Event types that run this task (a trigger): it then runs for the event's user, never over HTTP. */
    on: z.union([EventTypeNameSchema, z.array(EventTypeNameSchema).min(1)]).optional(),
    /** Of several triggers of one event in a group, only the highest priority runs (see src/events/process.ts). */
    exclusiveGroup: z
      .object({ name: Id, priority: z.number().int().min(-1_000_000).max(1_000_000) })
      .strict()
      .optional(),
    /** The event a committed run emits for its user, which event-triggered tasks may take up. */
    emits: z.enum(["signIn", "taskCompleted"]).optional(),
    /**
     * A reversal of a run (a cancelled event, an operator's reverse) gives its participation counts back too; of a
     * `participants` cap, the user's place when it was the user's last standing run.
     */
    restoreLimits: z.boolean().default(false),
    /** How a partial refund of the event's order takes back what a run gave (src/reversals/order-refund.ts). */
    onPartialRefund: z.enum(["proportional", "reevaluate"]).optional(),
  })
  .strict();

const Chance = z
  .object({
    name: z.string().min(1).optional(),
    initial: z.number().int().min(0).default(0),
    per: z.enum(["day", "week", "month", "activity"]).default("activity"),
    expires: z
      .string()
      .refine((e) => e === "period" || e === "never" || (parseDuration(e) ?? 0) > 0, {
        message: "expires is 'period', 'never' or an ISO 8601 duration of days, hours, minutes or seconds (P7D, PT12H)",
      })
      .default("never"),
    max: z.number().int().min(1).optional(),
  })
  .strict()
  .refine((c) => c.max === undefined || c.initial <= c.max, { message: "initial cannot exceed max", path: ["initial"] });

const Sale = SaleFieldsSchema.extend({
  /** A sale of identities: the bundle's membership SKU a paid order grants. */
  membershipSku: Id.optional(),
  /** The risk scene (`riskScenes`) its grabs are guarded and judged in. */
  riskScene: Id.optional(),
  timeWindow: z
    .object({ beginTime: z.string().min(1), endTime: z.string().min(1) })
    .strict()
    .optional(),
}).strict();

/** An activity file. Read a section at a time (tasks and chance kinds one by one), so one bad part hides nothing. */
const ActivityFileSchema = z
  .object({
    id: Id,
    name: z.string().min(1),
    timezone: z.string().default("UTC"),
    account: Id.optional(),
    timeWindow: z.object({ beginTime: z.string().min(1), endTime: z.string().min(1), message: z.string().min(1).optional() }).strict(),
    chances: z.record(Id, Chance).default({}),
    // Each checked below against the schema its form names (a definition, or `managed: api`).
    pools: z.record(Id, z.record(z.string(), z.unknown())).default({}),
    sales: z.record(Id, Sale).default({}),
    tasks: z.record(Id, Task).refine((t) => Object.keys(t).length > 0, "an activity needs at least one task"),
    // Checked on their own, bundle-wide (FileCompiler.pointPrograms): a file may hold only this section.
    pointPrograms: z.unknown().optional(),
    // Bundle-wide too (FileCompiler.codePools); a file may hold only this and pointPrograms.
    codePools: z.unknown().optional(),
    // Bundle-wide too (FileCompiler.riskSceneSection): tasks and sales of any activity name them.
    riskScenes: z.unknown().optional(),
    // Bundle-wide too (user segments, src/segments): named by any activity's `bySegment` reward nodes.
    segments: z.unknown().optional(),
    /** Business event types this file declares (names are global to the bundle). */
    eventTypes: z.record(z.string(), EventTypeSchema).default({}),
  })
  .strict();

type Path = (string | number)[];

/** Top-level sections that belong to the whole bundle: a file holding only these declares no activity. */
const BUNDLE_SECTIONS = new Set(["pointPrograms", "codePools", "riskScenes", "segments"]);

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((s, p) => (typeof p === "number" ? `${s}[${p}]` : s ? `${s}.${String(p)}` : String(p)), "");
}

/**
 * The offset of what `path` names in a parsed file: the deepest node on the way (a missing key: its map), and at
 * the end the key itself when `atKey` (an unknown key), else its value.
 */
function offsetOf(doc: Document, path: Path, atKey = false): number | undefined {
  let node: unknown = doc.contents;
  let at = (node as { range?: number[] } | null)?.range?.[0];
  for (const [i, seg] of path.entries()) {
    let next: unknown;
    let key: unknown;
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      next = pair?.value;
      key = pair?.key;
    } else if (isSeq(node) && typeof seg === "number") next = node.items[seg];
    const keyRange = (key as { range?: number[] } | null)?.range;
    const range = atKey && i === path.length - 1 && keyRange ? keyRange : ((next as { range?: number[] } | null)?.range ?? keyRange);
    if (!range) break;
    at = range[0];
    node = next;
  }
  return at;
}

/** The file's warnings: what it may mean but is probably a liability (`tasks:check --strict` refuses them). */
export interface FileCheck {
  activity?: CompiledActivity;
  issues: ConfigIssue[];
  warnings: ConfigIssue[];
}

class FileCompiler {
  readonly issues: ConfigIssue[] = [];
  readonly warnings: ConfigIssue[] = [];
  private doc?: Document;
  private readonly lines = new LineCounter();
  constructor(
    private readonly file: string,
    private readonly programs: Readonly<Record<string, PointProgram>> = {},
    private readonly membership?: MembershipProgram,
    private readonly codePools: Readonly<Record<string, CodePool>> = {},
    private readonly riskScenes: Readonly<Record<string, RiskScene>> = {},
    private readonly segments: Readonly<Record<string, UserSegment>> = {},
  ) {}

  /** The file's `membership` program, compiled (undefined: the file declares none, or it has problems, reported). */
  membershipProgram(source: string): MembershipProgram | undefined {
    this.doc = parseDocument(source, { uniqueKeys: true, lineCounter: this.lines });
    let raw: unknown;
    try {
      raw = this.doc.toJS();
    } catch {
      return undefined;
    }
    if (raw === null || typeof raw !== "object" || Array.isArray(raw) || !isMembershipFile(raw as Record<string, unknown>)) return undefined;
    return compileMembershipFile(raw as Record<string, unknown>, this);
  }

  /** The benefits catalog of the membership file last read by membershipProgram (empty when it declares none). */
  benefitCatalog(program: MembershipProgram, codePools: Record<string, CodePool>, pointPrograms: Record<string, PointProgram>) {
    const raw = this.doc?.toJS() as Record<string, unknown>;
    return compileCatalog(raw, this, { program, codePools, pointPrograms });
  }

  /** The file's `codePools` section, compiled; each problem is reported with its path. */
  codePoolSection(source: string): Record<string, CodePool> {
    return this.bundleSection(source, "codePools", CodePoolsSchema, CodePoolSchema, codePool);
  }

  /** The file's `riskScenes` section, compiled; each problem is reported with its path. */
  riskSceneSection(source: string): Record<string, RiskScene> {
    return this.bundleSection(source, "riskScenes", RiskScenesSchema, RiskSceneSchema, riskScene);
  }

  /** The file's `segments` section, compiled; each problem is reported with its path. */
  segmentSection(source: string): Record<string, UserSegment> {
    const compiled: Record<string, UserSegment> = {};
    const parsed = this.bundleSection(source, "segments", SegmentsSchema, SegmentSchema, (id, s) => ({ id, s }));
    for (const [id, { s }] of Object.entries(parsed)) {
      if (!Id.safeParse(id).success) {
        this.issue(["segments", id], `'${id}' is not a valid segment id (letters, digits, -, _)`, true);
        continue;
      }
      const segment = compileSegment(this.file, id, s, this);
      if (segment) compiled[id] = segment;
    }
    return compiled;
  }

  /** The file's `pointPrograms` section, compiled; each problem is reported with its path. */
  pointPrograms(source: string): Record<string, PointProgram> {
    return this.bundleSection(source, "pointPrograms", PointProgramsSchema, PointProgramSchema, pointProgram);
  }

  /** A top-level map of bundle-wide definitions by id (`key`), each entry checked by `entry` and built by `build`. */
  private bundleSection<E extends z.ZodType, T>(
    source: string,
    key: string,
    map: z.ZodType<Record<string, unknown>>,
    entry: E,
    build: (id: string, parsed: z.output<E>) => T,
  ): Record<string, T> {
    this.doc = parseDocument(source, { uniqueKeys: true, lineCounter: this.lines });
    let raw: unknown;
    try {
      raw = this.doc.toJS();
    } catch {
      return {};
    }
    if (raw === null || typeof raw !== "object" || !Object.hasOwn(raw, key)) return {};
    const entries = this.section([key], map, (raw as Record<string, unknown>)[key]) ?? {};
    const out: Record<string, T> = {};
    for (const [id, e] of Object.entries(entries)) {
      const parsed = this.section([key, id], entry, e);
      if (parsed) out[id] = build(id, parsed);
    }
    return out;
  }

  /** A membership SKU granted from `source` (a sale's, a card pool's), checked against the bundle's program. */
  membershipSku(id: string, path: Path, source: "flashSale" | "offlineCard") {
    if (!this.membership) return this.issue(path, "the bundle declares no membership program (a file with `membership:`)");
    const sku = skuOf(this.membership, id);
    const known = Object.keys(this.membership.skus);
    if (!sku) this.issue(path, `unknown membership SKU '${id}'${didYouMean(id, known)}; declared: ${known.join(", ")}`);
    else if (!sku.sources.includes(source)) this.issue(path, `SKU '${id}' is not granted by ${source} (its sources: ${sku.sources.join(", ")})`);
  }

  issue(path: Path, reason: string, atKey = false) {
    this.issues.push(this.located(path, reason, atKey));
  }

  warn(path: Path, reason: string) {
    this.warnings.push(this.located(path, reason));
  }

  located(path: Path, reason: string, atKey = false): ConfigIssue {
    const offset = this.doc && offsetOf(this.doc, path, atKey);
    const pos = offset === undefined ? undefined : this.lines.linePos(offset);
    return { file: this.file, path: formatPath(path), reason, ...(pos && { line: pos.line, column: pos.col }) };
  }

  /** A zod failure under `prefix`, each unknown key on its own with the nearest known one. */
  zodIssues(prefix: Path, schema: z.ZodType, error: z.ZodError) {
    for (const i of error.issues) {
      const path = [...prefix, ...(i.path as Path)];
      if (i.code === "unrecognized_keys") {
        const known = knownKeys(schema, i.path);
        for (const k of i.keys) this.issue([...path, k], `unknown key '${k}'${didYouMean(k, known)}; known: ${known.join(", ")}`, true);
      } else this.issue(path, i.message);
    }
  }

  /** A section parsed on its own, so one bad section does not hide the problems of the others. */
  private section<S extends z.ZodType>(path: Path, schema: S, value: unknown): z.output<S> | undefined {
    const r = schema.safeParse(value);
    if (r.success) return r.data;
    this.zodIssues(path, schema, r.error);
    return undefined;
  }

  compile(source: string): CompiledActivity | undefined {
    const fields = this.parse(source);
    return fields && this.activity(fields);
  }

  /** The file's top-level map, every YAML problem reported; undefined when it holds no map. */
  parse(source: string): Record<string, unknown> | undefined {
    const doc = parseDocument(source, { prettyErrors: true, uniqueKeys: true, lineCounter: this.lines });
    this.doc = doc;
    for (const e of doc.errors) {
      const pos = e.linePos?.[0];
      this.issues.push({ file: this.file, path: "", reason: `YAML: ${e.message.split("\n")[0]}`, ...(pos && { line: pos.line, column: pos.col }) });
    }
    // Whatever the YAML still holds is checked too: every problem is reported in one pass.
    let raw: unknown;
    try {
      raw = doc.toJS();
    } catch {
      return undefined;
    }
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      if (doc.errors.length === 0) this.issue([], "a task config is a map with id, name, timeWindow and tasks");
      return undefined;
    }
    return raw as Record<string, unknown>;
  }

  activity(fields: Record<string, unknown>): CompiledActivity | undefined {
    // A file of point programs alone declares no activity.
    if (Object.keys(fields).every((k) => BUNDLE_SECTIONS.has(k))) return undefined;
    const shape = ActivityFileSchema.shape;
    const known = Object.keys(shape);
    for (const k of Object.keys(fields)) {
      if (!(k in shape)) this.issue([k], `unknown key '${k}'${didYouMean(k, known)}; known: ${known.join(", ")}`, true);
    }
    const id = this.section(["id"], shape.id, fields.id);
    const name = this.section(["name"], shape.name, fields.name);
    let timezone = this.section(["timezone"], shape.timezone, fields.timezone);
    const account = this.section(["account"], shape.account, fields.account);
    const timeWindow = this.section(["timeWindow"], shape.timeWindow, fields.timeWindow);
    const chanceEntries = this.section(["chances"], z.record(z.string(), z.unknown()), fields.chances ?? {}) ?? {};
    const poolEntries = this.section(["pools"], shape.pools, fields.pools) ?? {};
    const saleEntries = this.section(["sales"], shape.sales, fields.sales) ?? {};
    const taskEntries = this.section(["tasks"], z.record(z.string(), z.unknown()), fields.tasks ?? {}) ?? {};
    const eventTypeEntries = this.section(["eventTypes"], z.record(z.string(), z.unknown()), fields.eventTypes ?? {}) ?? {};
    if (Object.keys(taskEntries).length === 0) this.issue(["tasks"], "an activity needs at least one task");

    if (timezone !== undefined && !isTimeZone(timezone)) {
      this.issue(["timezone"], `'${timezone}' is not an IANA timezone (e.g. Asia/Shanghai, UTC)`);
      timezone = undefined;
    }
    const tz = timezone ?? "UTC";
    let begin = timeWindow && this.time(timeWindow.beginTime, tz, ["timeWindow", "beginTime"]);
    let end = timeWindow && this.time(timeWindow.endTime, tz, ["timeWindow", "endTime"]);
    if (begin !== undefined && end !== undefined && begin >= end) this.issue(["timeWindow", "endTime"], "endTime must be after beginTime");
    // Without a usable window, the checks below run against an unbounded one rather than stop.
    begin ??= -Infinity;
    end ??= Infinity;

    // An entry with a problem still counts as declared below, so tasks naming it report nothing more.
    const chances: Record<string, ChanceKind> = {};
    for (const [id, entry] of Object.entries(chanceEntries)) {
      if (!Id.safeParse(id).success) this.issue(["chances", id], `'${id}' is not a valid chance kind id (letters, digits, -, _)`, true);
      const c = this.section(["chances", id], Chance, entry) ?? Chance.parse({});
      const expires = c.expires === "period" || c.expires === "never" ? c.expires : parseDuration(c.expires)!;
      chances[id] = { id, name: c.name ?? id, initial: c.initial, per: c.per, expires, max: c.max ?? null };
    }

    const pools: Record<string, PoolDefinition> = {};
    const managedPools: Record<string, string> = {};
    const namespace = account ?? id ?? "";
    if (namespace === TICKETS_NAMESPACE || namespace === EVENTS_NAMESPACE) {
      const key = account === undefined ? "id" : "account";
      const holds = namespace === TICKETS_NAMESPACE ? "queued-intake tickets" : "business events' outcomes";
      this.issue([key], `'${namespace}' is the account namespace of ${holds}: choose another ${key === "id" ? "id, or set account" : "account"}`);
    }
    for (const [id, entry] of Object.entries(poolEntries)) {
      const managed = "managed" in entry;
      const schema = managed ? ManagedPoolSchema : PoolFieldsSchema;
      const checked = schema.safeParse(entry);
      if (!checked.success) {
        this.zodIssues(["pools", id], schema, checked.error);
        managedPools[id] = `${namespace}:${id}`; // declared, for the tasks that name it
        continue;
      }
      if (managed) {
        managedPools[id] = `${namespace}:${id}`;
        continue;
      }
      const p = checked.data as z.output<typeof PoolFieldsSchema>;
      const window = this.window(p.timeWindow, tz, { begin, end }, ["pools", id, "timeWindow"], "pool");
      if (window) pools[id] = poolDefinition(`${namespace}:${id}`, p, window.begin, window.end);
    }

    const sales: Record<string, SaleDefinition> = {};
    for (const [id, f] of Object.entries(saleEntries)) {
      const window = this.window(f.timeWindow, tz, { begin, end }, ["sales", id, "timeWindow"], "sale");
      if (f.shards > f.stock) this.issue(["sales", id, "shards"], "a sale cannot have more shards than units of stock");
      if (f.membershipSku !== undefined) this.membershipSku(f.membershipSku, ["sales", id, "membershipSku"], "flashSale");
      if (f.riskScene !== undefined && !own(this.riskScenes, f.riskScene)) {
        this.issue(["sales", id, "riskScene"], sceneNotDeclared(f.riskScene, this.riskScenes));
      }
      if (window)
        sales[id] = {
          ...saleDefinition(id, f, window.begin, window.end),
          ...(f.membershipSku !== undefined && { membershipSku: f.membershipSku }),
          ...(f.riskScene !== undefined && { riskScene: f.riskScene }),
        };
    }

    const eventTypes: Record<string, EventType> = {};
    for (const [name, entry] of Object.entries(eventTypeEntries)) {
      if (!EventTypeNameSchema.safeParse(name).success) this.issue(["eventTypes", name], `'${name}' is not a valid event type name`, true);
      else if (BUILT_IN_EVENT_TYPES.has(name)) this.issue(["eventTypes", name], `'${name}' is a built-in event type: choose another name`, true);
      const t = this.section(["eventTypes", name], EventTypeSchema, entry);
      if (t) eventTypes[name] = compileEventType(name, this.file, t);
    }

    const activity: Omit<CompiledActivity, "tasks" | "countedParticipations"> = {
      id: id ?? "",
      name: name ?? "",
      file: this.file,
      timezone: tz,
      namespace,
      begin,
      end,
      windowMessage: timeWindow?.message ?? "This activity is not running now",
      chances,
      pools,
      managedPools,
      sales,
      eventTypes,
    };
    const tasks: Record<string, CompiledTask> = {};
    for (const [taskId, entry] of Object.entries(taskEntries)) {
      if (!Id.safeParse(taskId).success) this.issue(["tasks", taskId], `'${taskId}' is not a valid task id (letters, digits, -, _)`);
      const t = this.section(["tasks", taskId], Task, entry);
      const task = t && this.task(activity, taskId, t, Object.keys(taskEntries));
      if (task) tasks[taskId] = task;
    }
    // Every participation count some task's conditions read, once: runs of the tasks it names are counted.
    const counted = new Map<string, ParticipationCount>();
    for (const t of Object.values(tasks)) {
      for (const c of [...(t.when?.counts ?? []), ...t.rewardTree.guards.flatMap((g) => g.counts)]) counted.set(`${c.task}:${c.period}`, c);
    }
    return this.issues.length === 0 ? { ...activity, tasks, countedParticipations: [...counted.values()] } : undefined;
  }

  /** A pool's or sale's own window (the activity's when not given), which must lie inside the activity's. */
  private window(
    w: { beginTime: string; endTime: string } | undefined,
    tz: string,
    outer: { begin: number; end: number },
    path: Path,
    what: string,
  ): { begin: number; end: number } | undefined {
    const r = innerWindow(w, tz, outer, what);
    if ("reason" in r) {
      this.issue(r.field ? [...path, r.field] : path, r.reason);
      return undefined;
    }
    return r;
  }

  private time(text: string, tz: string, path: Path): number | undefined {
    const ms = parseActivityTime(text, tz);
    if (ms === null) this.issue(path, notATime(text));
    return ms ?? undefined;
  }

  private task(
    activity: Omit<CompiledActivity, "tasks" | "countedParticipations">,
    id: string,
    t: z.output<typeof Task>,
    taskIds: string[],
  ): CompiledTask | undefined {
    const base: Path = ["tasks", id];
    const before = this.issues.length;
    const rules: CompiledRule[] = t.request.map((r, i) => {
      const method = r.method ?? t.method;
      if (method === "POST" && t.method === "GET") {
        this.issue([...base, "request", i, "method"], "a GET task has no body: this rule can only read the query (method: get)");
      }
      const checks = splitRules(r.rule).flatMap((text) => {
        try {
          return [parseRule(text)];
        } catch (e) {
          this.issue([...base, "request", i, "rule"], (e as Error).message);
          return [];
        }
      });
      return {
        field: r.field,
        source: method === "GET" ? ("query" as const) : ("body" as const),
        checks,
        message: r.message ?? `${r.field} is invalid`,
      };
    });

    const ctx: CompileContext = {
      activity,
      taskId: id,
      params: t.params,
      pointPrograms: this.programs,
      membership: this.membership,
      codePools: this.codePools,
      riskScenes: this.riskScenes,
    };
    const list = (v: z.output<typeof ComponentList> | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
    const validators = t.validator.map((ref, i) => this.place(registry.validators, "validator", ref, [...base, "validator", i], ctx));
    // `params.riskScene` (where seed 003 puts it) judges the run last among the validators, unless a `risk` validator
    // already has its place (a bare `risk` reads the same param).
    const sceneParam = t.params.riskScene;
    if (sceneParam !== undefined && !validators.some((v) => v?.def.code === "risk")) {
      const path = [...base, "params", "riskScene"];
      if (typeof sceneParam !== "string") this.issue(path, "riskScene names a scene declared under riskScenes");
      else if (!own(this.riskScenes, sceneParam)) this.issue(path, sceneNotDeclared(sceneParam, this.riskScenes));
      else validators.push({ def: riskValidator, args: { scene: this.riskScenes[sceneParam]! } });
    }
    const commands = list(t.command).map((ref, i) => this.place(registry.commands, "command", ref, [...base, "command", i], ctx));
    const afterCommands = list(t.afterCommand).map((ref, i) => this.place(registry.commands, "command", ref, [...base, "afterCommand", i], ctx));

    // A trigger always runs for its event's user; anything else that works on the user needs `login` earlier in the
    // validator list, so it never meets no user.
    const on = t.on === undefined ? undefined : Array.isArray(t.on) ? t.on : [t.on];
    const conditions = {
      timezone: activity.timezone,
      taskIds,
      pointPrograms: Object.keys(this.programs),
      identityTypes: this.membership?.identityTypes ?? {},
      ...(on ? EVENT_TREES : TASK_TREES),
    };
    const compiled = t.when === undefined ? undefined : compileTree(t.when, conditions);
    const rewardTree =
      t.reward === undefined
        ? NO_REWARDS
        : compileRewardTree(t.reward, {
            taskId: id,
            place: (ref, at) => this.place(registry.rewards, "reward", ref, [...base, "reward", ...at], ctx),
            conditions,
            segments: this.segments,
            issue: (at, reason) => this.issue([...base, "reward", ...at], reason),
          });
    const rewards = rewardTree?.leaves ?? [];
    if (compiled && "issues" in compiled) for (const i of compiled.issues) this.issue([...base, "when", ...i.path], i.reason);
    const when = compiled && "tree" in compiled ? compiled.tree : undefined;

    const loginAt = on ? -Infinity : validators.findIndex((v) => v?.def.code === "login");
    const userFacts = (["attributes", "groups", "participations", "orders", "identities"] as const).filter(
      (k) => when?.needs.has(k) || rewardTree?.guards.some((g) => g.needs.has(k)),
    );
    if (userFacts.length > 0 && loginAt === -1) {
      this.issue([...base, "when"], `these conditions read the user's ${userFacts.join(", ")}: add 'login' to the validators`);
    }
    validators.forEach((v, i) => {
      if (v?.def.needsUser && (loginAt === -1 || loginAt > i)) {
        this.issue([...base, "validator", i], `'${v.def.code}' works on the signed-in user: put 'login' before it`);
      }
    });
    const userSteps = [
      ...rewards.map((r) => r && `reward '${r.def.code}'`),
      ...[...commands, ...afterCommands].filter((c) => c?.def.needsUser).map((c) => `command '${c!.def.code}'`),
    ].filter(Boolean);
    if (userSteps.length > 0 && loginAt === -1) {
      this.issue([...base, "validator"], `${userSteps.join(", ")} need a signed-in user: add 'login' to the validators`);
    }
    // A ticket lives in its user's account: a queued run needs a user to hold it.
    if (on && t.intake === "queue") this.issue([...base, "intake"], "a task run by events is already queued with its event: remove intake");
    // An activity code comes with a client's request: an event has none to send.
    const codeAt = validators.findIndex((v) => v?.def.code === "activityCode");
    if (on && codeAt >= 0)
      this.issue([...base, "validator", codeAt], "a task run by events has no client to send an activity code: remove activityCode");
    if (!on && t.exclusiveGroup) this.issue([...base, "exclusiveGroup"], "only a task run by events (`on`) belongs to an exclusive group");
    if (!on && t.onPartialRefund) this.issue([...base, "onPartialRefund"], "only a task run by events (`on`) is refunded with its event");
    // Re-evaluating reads the facts again now: those the run itself changed would judge the remaining order wrongly.
    const changedByRun = (["participations", "points"] as const).filter((k) => when?.needs.has(k));
    if (t.onPartialRefund === "reevaluate" && when && (changedByRun.length > 0 || keepsProgress(when))) {
      const read = [...changedByRun, ...(keepsProgress(when) ? ["atLeast progress (scope: activity)"] : [])].join(", ");
      this.issue(
        [...base, "onPartialRefund"],
        `reevaluate re-reads the conditions' facts after the run changed them (${read}): use proportional for this task`,
      );
    }
    if (t.intake === "queue" && loginAt === -1) {
      this.issue([...base, "intake"], "a queued task's ticket is kept in the user's account: add 'login' to the validators");
    }
    // A reward that can be bounded (it has a stock or a budget) but is not, in a task anyone may repeat at will.
    const limited = validators.some((v) => v?.def.code === "limit" || v?.def.code === "chances" || v?.def.code === "stock");
    rewards.forEach((r, i) => {
      if (!r || limited) return;
      const bounds = knownKeys(r.def.args, []).filter((k) => k === "stock" || k === "budget");
      const args = r.args as Record<string, unknown>;
      if (bounds.length > 0 && bounds.every((k) => args[k] === undefined)) {
        this.warn(
          [...base, "reward", i],
          `reward '${r.def.code}' has no ${bounds.join(" and no ")} and the task has no limit: every request can take one`,
        );
      }
    });
    if (this.issues.length > before) return undefined;
    return {
      id,
      activityId: activity.id,
      name: t.name ?? id,
      method: t.method,
      rules,
      params: t.params,
      validators: validators as Placed<(typeof registry.validators)[number]>[],
      commands: commands as Placed<(typeof registry.commands)[number]>[],
      rewards: rewards as Placed<(typeof registry.rewards)[number]>[],
      rewardTree: rewardTree!,
      afterCommands: afterCommands as Placed<(typeof registry.commands)[number]>[],
      when,
      rateLimit: t.rateLimit,
      intake: t.intake,
      ...(riskSceneOf(validators) && { riskScene: riskSceneOf(validators) }),
      ...(on && { on }),
      ...(t.exclusiveGroup && { exclusiveGroup: t.exclusiveGroup }),
      ...(t.emits && { emits: t.emits }),
      restoreLimits: t.restoreLimits,
      onPartialRefund: t.onPartialRefund ?? "proportional",
    };
  }

  private place<D extends { code: string; args: z.ZodType; fromParams?: string; prepare?: (a: any, c: CompileContext) => unknown }>(
    defs: D[],
    kind: string,
    ref: z.output<typeof ComponentRef>,
    path: Path,
    ctx: CompileContext,
  ): Placed<D> | undefined {
    const [code, raw] = typeof ref === "string" ? [ref, undefined] : Object.entries(ref)[0]!;
    const def = defs.find((d) => d.code === code);
    if (!def) {
      const codes = defs.map((d) => d.code);
      this.issue(path, `unknown ${kind} '${code}'${didYouMean(code, codes)}; known: ${codes.join(", ")}`);
      return undefined;
    }
    let input = raw;
    if (typeof raw === "string" && raw.startsWith("$params.")) {
      input = raw
        .slice("$params.".length)
        .split(".")
        .reduce<unknown>((o, k) => (o && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined), ctx.params);
      if (input === undefined) {
        this.issue([...path, code], `${raw} is not set in this task's params`);
        return undefined;
      }
    } else if (raw === undefined && def.fromParams && ctx.params[def.fromParams] !== undefined) {
      input = ctx.params[def.fromParams];
    } else if (raw === null) {
      input = undefined;
    }
    const parsed = def.args.safeParse(input);
    if (!parsed.success) {
      this.zodIssues([...path, code], def.args, parsed.error);
      return undefined;
    }
    try {
      return { def, args: def.prepare ? def.prepare(parsed.data, ctx) : parsed.data };
    } catch (e) {
      if (e instanceof ArgsError) {
        this.issue([...path, code, ...e.path], e.message);
        return undefined;
      }
      throw e;
    }
  }
}

/** A bundle checked: its compiled form when it has no error, every error, and every warning. */
export interface ConfigCheck {
  config?: CompiledConfig;
  issues: ConfigIssue[];
  warnings: ConfigIssue[];
}

/** Checks a bundle of activity files, reporting every problem in every file. */
export function checkConfig(files: ConfigFile[], version: string): ConfigCheck {
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const activities = new Map<string, CompiledActivity>();
  const namespaces = new Map<string, string>();
  const sales = new Map<string, { file: string; sale: SaleDefinition }>();
  // Point programs first: they are the bundle's, and any activity's tasks may name them.
  const programs: Record<string, PointProgram> = {};
  const programFiles = new Map<string, string>();
  for (const f of files) {
    const c = new FileCompiler(f.name);
    for (const [id, program] of Object.entries(c.pointPrograms(f.source))) {
      const other = programFiles.get(id);
      if (other) c.issue(["pointPrograms", id], `point program '${id}' is also declared in ${other}`);
      else {
        programs[id] = program;
        programFiles.set(id, f.name);
      }
    }
    issues.push(...c.issues);
  }
  // Code pools likewise: the `redeemCode` reward of any activity names one.
  const codePools: Record<string, CodePool> = {};
  const codePoolFiles = new Map<string, string>();
  for (const f of files) {
    const c = new FileCompiler(f.name);
    for (const [id, pool] of Object.entries(c.codePoolSection(f.source))) {
      const other = codePoolFiles.get(id);
      if (other) c.issue(["codePools", id], `code pool '${id}' is also declared in ${other}`);
      else {
        codePools[id] = pool;
        codePoolFiles.set(id, f.name);
      }
    }
    issues.push(...c.issues);
  }
  // Risk scenes likewise: tasks and sales of any activity name them.
  const riskScenes: Record<string, RiskScene> = {};
  const sceneFiles = new Map<string, string>();
  for (const f of files) {
    const c = new FileCompiler(f.name);
    for (const [id, scene] of Object.entries(c.riskSceneSection(f.source))) {
      const other = sceneFiles.get(id);
      if (other) c.issue(["riskScenes", id], `risk scene '${id}' is also declared in ${other}`);
      else {
        riskScenes[id] = scene;
        sceneFiles.set(id, f.name);
      }
    }
    issues.push(...c.issues);
  }
  // User segments likewise: any activity's `bySegment` nodes name them.
  const segments: Record<string, UserSegment> = {};
  const segmentFiles = new Map<string, string>();
  for (const f of files) {
    const c = new FileCompiler(f.name);
    for (const [id, segment] of Object.entries(c.segmentSection(f.source))) {
      const other = segmentFiles.get(id);
      if (other) c.issue(["segments", id], `segment '${id}' is also declared in ${other}`);
      else {
        segments[id] = segment;
        segmentFiles.set(id, f.name);
      }
    }
    issues.push(...c.issues);
  }
  // The membership program next: one per bundle, and any activity's tasks may name its SKUs and identity types.
  // Its file's benefits catalog with it: materials name code pools, benefits identity types and point programs.
  let membership: MembershipProgram | undefined;
  let membershipFile: string | undefined;
  let benefits: BenefitCatalog | undefined;
  for (const f of files) {
    const c = new FileCompiler(f.name);
    const m = c.membershipProgram(f.source);
    if (m && membershipFile) c.issue(["membership"], `the membership program is already declared in ${membershipFile}`, true);
    else if (m) {
      membership = m;
      membershipFile = f.name;
      benefits = c.benefitCatalog(m, codePools, programs);
    }
    issues.push(...c.issues);
  }
  // A card pool grants a SKU of that program (POST /v1/membership/activate): it must be there and granted by cards.
  for (const [id, pool] of Object.entries(codePools)) {
    const file = files.find((f) => f.name === codePoolFiles.get(id));
    if (pool.sku === null || !file) continue;
    const c = new FileCompiler(file.name, programs, membership);
    c.parse(file.source);
    c.membershipSku(pool.sku, ["codePools", id, "sku"], "offlineCard");
    issues.push(...c.issues);
  }
  const profile: ProfileSchema = {};
  // The benefits center's claims are tasks of an activity generated from the catalog (src/benefits/claims.ts).
  const claims = benefits && membership && claimsActivitySource(benefits, membership);
  const activityFiles = claims ? [...files, { name: `${membershipFile} (benefit claims)`, source: claims }] : files;
  for (const f of activityFiles) {
    const c = new FileCompiler(f.name, programs, membership, codePools, riskScenes, segments);
    const fields = c.parse(f.source);
    if (fields && isMembershipFile(fields)) continue;
    if (fields && isProfileFile(fields)) {
      for (const attribute of compileProfileFile(f.name, fields, c)) {
        const other = own(profile, attribute.name);
        if (other) c.issue(["profile", "attributes", attribute.name], `attribute '${attribute.name}' is also declared in ${other.file}`, true);
        else profile[attribute.name] = attribute;
      }
      issues.push(...c.issues);
      continue;
    }
    const activity = fields && c.activity(fields);
    issues.push(...c.issues);
    warnings.push(...c.warnings);
    if (!activity) continue;
    const clash = activities.get(activity.id);
    if (clash) {
      issues.push(c.located(["id"], `activity '${activity.id}' is also defined in ${clash.file}`));
      continue;
    }
    const owner = namespaces.get(activity.namespace);
    if (owner) {
      issues.push(c.located(["account"], `account '${activity.namespace}' is already used by ${owner}`));
      continue;
    }
    namespaces.set(activity.namespace, f.name);
    activities.set(activity.id, activity);
    // Sale ids are global (the flash-sale routes name no activity).
    for (const [id, sale] of Object.entries(activity.sales)) {
      const other = sales.get(id);
      if (other) issues.push(c.located(["sales", id], `sale '${id}' is also declared in ${other.file}`));
      else sales.set(id, { file: f.name, sale });
    }
  }
  const { eventTypes, triggers } = linkEvents(activityFiles, activities, issues);
  if (issues.length > 0) return { issues, warnings };
  const config: CompiledConfig = {
    version,
    revision: 0,
    activities,
    sales: new Map([...sales].map(([id, s]) => [id, s.sale])),
    profile,
    pointPrograms: new Map(Object.entries(programs)),
    ...(membership && { membership }),
    ...(benefits && { benefits }),
    codePools: new Map(Object.entries(codePools)),
    riskScenes: new Map(Object.entries(riskScenes)),
    segments: new Map(Object.entries(segments)),
    eventTypes,
    triggers,
  };
  return { config, issues, warnings };
}

/**
 * The bundle's event types (built in, and declared once across its files) and, by type, the tasks it triggers:
 * each `on` must name a known type, with the path of the task that names it.
 */
function linkEvents(files: ConfigFile[], activities: Map<string, CompiledActivity>, issues: ConfigIssue[]) {
  const eventTypes = new Map<string, EventType>(BUILT_IN_EVENT_TYPES);
  const compilerOf = (file: string) => {
    const c = new FileCompiler(file);
    c.compile(files.find((f) => f.name === file)!.source);
    return c;
  };
  for (const a of activities.values()) {
    for (const [name, t] of Object.entries(a.eventTypes)) {
      const other = eventTypes.get(name);
      if (other) issues.push(compilerOf(a.file).located(["eventTypes", name], `event type '${name}' is also declared in ${other.origin}`));
      else eventTypes.set(name, t);
    }
  }
  const triggers = new Map<string, CompiledTask[]>();
  for (const a of activities.values()) {
    for (const task of Object.values(a.tasks)) {
      for (const [i, type] of (task.on ?? []).entries()) {
        if (!eventTypes.has(type)) {
          const known = [...eventTypes.keys()];
          const path = ["tasks", task.id, "on", ...(Array.isArray(task.on) && task.on.length > 1 ? [i] : [])];
          issues.push(compilerOf(a.file).located(path, `unknown event type '${type}'${didYouMean(type, known)}; known: ${known.join(", ")}`));
          continue;
        }
        triggers.set(type, [...(triggers.get(type) ?? []), task]);
      }
    }
  }
  return { eventTypes, triggers };
}

/** Compiles a bundle of activity files; throws ConfigError listing every problem in every file. */
export function compileConfig(files: ConfigFile[], version: string): CompiledConfig {
  const checked = checkConfig(files, version);
  if (!checked.config) throw new ConfigError(checked.issues);
  return checked.config;
}

/** What is already stored where a bundle would go: the running version and the ids the admin API created. */
export interface StoredState {
  running?: CompiledConfig;
  createdSales: Set<string>;
  /** Global pool ids (`<namespace>:<pool>`). */
  createdPools: Set<string>;
}

/**
 * A checked bundle against what is stored: a sale or pool id created through the admin API is taken for good (an
 * error), and a sale's stock or shards, or a pool's shards or tiers, are fixed once used, so a change would make it
 * refuse every grab or draw (a warning: the running one may not have been used yet).
 */
export function checkAgainstStored(files: ConfigFile[], config: CompiledConfig, stored: StoredState): Omit<ConfigCheck, "config"> {
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  for (const a of config.activities.values()) {
    // The activity generated for benefit claims has no file of its own, nor sales or pools.
    const source = files.find((f) => f.name === a.file)?.source;
    if (source === undefined) continue;
    const c = new FileCompiler(a.file);
    c.compile(source);
    const running = [...(stored.running?.activities.values() ?? [])].find((r) => r.namespace === a.namespace);
    for (const [id, sale] of Object.entries(a.sales)) {
      if (stored.createdSales.has(id)) {
        issues.push(c.located(["sales", id], `sale id '${id}' was created through the admin API; ids are permanent: choose another`));
      }
      const was = stored.running?.sales.get(id);
      if (was && (was.stock !== sale.stock || was.shards !== sale.shards)) {
        warnings.push(
          c.located(
            ["sales", id],
            `the running version has stock ${was.stock} in ${was.shards} shard(s): once used, a sale keeps them and its grabs would be refused (UNAVAILABLE); use a new sale id`,
          ),
        );
      }
    }
    for (const [id, pool] of Object.entries(a.pools)) {
      if (stored.createdPools.has(pool.id)) {
        issues.push(
          c.located(
            ["pools", id],
            `pool '${pool.id}' was created through the admin API; ids are permanent: declare it \`managed: api\` or choose another id`,
          ),
        );
      }
      const was = running?.pools[id];
      const shape = (p: PoolDefinition) => `${p.shards} shard(s), tiers ${p.tiers.map((t) => t.id).join(", ")}`;
      if (was && shape(was) !== shape(pool)) {
        warnings.push(
          c.located(
            ["pools", id],
            `the running version has ${shape(was)}: once used, a pool keeps them and its draws would be refused (UNAVAILABLE); change quantities with replenish/withdraw, or use a new pool id`,
          ),
        );
      }
    }
  }
  return { issues, warnings };
}

/** The content hash that names a bundle version: the same files always give the same version. */
export async function bundleHash(files: ConfigFile[]): Promise<string> {
  const canonical = JSON.stringify([...files].sort((a, b) => a.name.localeCompare(b.name)).map((f) => [f.name, f.source]));
  return (await sha256Hex(canonical)).slice(0, 16);
}

/** The scene a task's `risk` validator judges it in, if it has one. */
function riskSceneOf(validators: (Placed<unknown> | undefined)[]): string | undefined {
  const placed = validators.find((v) => (v?.def as { code?: string } | undefined)?.code === "risk");
  return (placed?.args as { scene: RiskScene } | undefined)?.scene.id;
}
