/**
 * Task configs: YAML files → zod-checked, typed activities, once per pushed version. Every problem is reported
 * with its file, its path inside the file and the reason, and a config with any problem never reaches a request.
 */
import { parseDocument } from "yaml";
import { z } from "zod";
import { ArgsError, type CompileContext, type Placed } from "../engine/define";
import * as registry from "../engine/registry";
import type { ChanceKind, CompiledActivity, CompiledConfig, CompiledRule, CompiledTask } from "./compiled";
import { parseRule, splitRules } from "./request-rules";
import { ManagedPoolSchema, PoolFieldsSchema, poolDefinition, type PoolDefinition } from "../prizes/pool-definition";
import { RateLimitSchema } from "../rate-limit/rule";
import { saleDefinition, SaleFieldsSchema, type SaleDefinition } from "../sales/sale-definition";
import { ConfigIdSchema } from "./id";
import { innerWindow, isTimeZone, notATime, parseActivityTime, parseDuration } from "./time";
import { sha256Hex } from "../sharding";

export interface ConfigFile {
  name: string;
  source: string;
}

export interface ConfigIssue {
  file: string;
  path: string;
  reason: string;
}

export class ConfigError extends Error {
  constructor(readonly issues: ConfigIssue[]) {
    super(issues.map((i) => `${i.file}: ${i.path || "(root)"}: ${i.reason}`).join("\n"));
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
    method: z.string().transform((m) => m.toUpperCase()).pipe(z.enum(["GET", "POST"])).optional(),
    message: z.string().min(1).optional(),
  })
  .strict();

const Task = z
  .object({
    name: z.string().min(1).optional(),
    method: z.string().transform((m) => m.toUpperCase()).pipe(z.enum(["GET", "POST"])).default("POST"),
    request: z.array(RequestRule).default([]),
    params: z.record(z.string(), z.unknown()).default({}),
    validator: z.array(ComponentRef).default([]),
    command: ComponentList.optional(),
    reward: ComponentList.optional(),
    afterCommand: ComponentList.optional(),
    rateLimit: RateLimitSchema.optional(),
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
  timeWindow: z.object({ beginTime: z.string().min(1), endTime: z.string().min(1) }).strict().optional(),
}).strict();

const ActivityFileSchema = z
  .object({
    id: Id,
    name: z.string().min(1),
    timezone: z.string().default("UTC"),
    account: Id.optional(),
    timeWindow: z
      .object({ beginTime: z.string().min(1), endTime: z.string().min(1), message: z.string().min(1).optional() })
      .strict(),
    chances: z.record(Id, Chance).default({}),
    // Each checked below against the schema its form names (a definition, or `managed: api`).
    pools: z.record(Id, z.record(z.string(), z.unknown())).default({}),
    sales: z.record(Id, Sale).default({}),
    tasks: z.record(Id, Task).refine((t) => Object.keys(t).length > 0, "an activity needs at least one task"),
  })
  .strict();

type Path = (string | number)[];

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((s, p) => (typeof p === "number" ? `${s}[${p}]` : s ? `${s}.${String(p)}` : String(p)), "");
}

class FileCompiler {
  readonly issues: ConfigIssue[] = [];
  constructor(private readonly file: string) {}

  issue(path: Path, reason: string) {
    this.issues.push({ file: this.file, path: formatPath(path), reason });
  }

  compile(source: string): CompiledActivity | undefined {
    const doc = parseDocument(source, { prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length > 0) {
      for (const e of doc.errors) this.issue([], `YAML: ${e.message.split("\n")[0]}`);
      return undefined;
    }
    const parsed = ActivityFileSchema.safeParse(doc.toJS());
    if (!parsed.success) {
      for (const i of parsed.error.issues) this.issue(i.path as Path, i.message);
      return undefined;
    }
    const a = parsed.data;
    if (!isTimeZone(a.timezone)) {
      this.issue(["timezone"], `'${a.timezone}' is not an IANA timezone (e.g. Asia/Shanghai, UTC)`);
      return undefined;
    }
    const begin = this.time(a.timeWindow.beginTime, a.timezone, ["timeWindow", "beginTime"]);
    const end = this.time(a.timeWindow.endTime, a.timezone, ["timeWindow", "endTime"]);
    if (begin === undefined || end === undefined) return undefined;
    if (begin >= end) {
      this.issue(["timeWindow", "endTime"], "endTime must be after beginTime");
      return undefined;
    }
    const chances: Record<string, ChanceKind> = {};
    for (const [id, c] of Object.entries(a.chances)) {
      const expires = c.expires === "period" || c.expires === "never" ? c.expires : parseDuration(c.expires)!;
      chances[id] = { id, name: c.name ?? id, initial: c.initial, per: c.per, expires, max: c.max ?? null };
    }

    const pools: Record<string, PoolDefinition> = {};
    const managedPools: Record<string, string> = {};
    const namespace = a.account ?? a.id;
    for (const [id, entry] of Object.entries(a.pools)) {
      const managed = "managed" in entry;
      const checked = (managed ? ManagedPoolSchema : PoolFieldsSchema).safeParse(entry);
      if (!checked.success) {
        for (const i of checked.error.issues) this.issue(["pools", id, ...(i.path as Path)], i.message);
        continue;
      }
      if (managed) {
        managedPools[id] = `${namespace}:${id}`;
        continue;
      }
      const p = checked.data as z.output<typeof PoolFieldsSchema>;
      const window = this.window(p.timeWindow, a.timezone, { begin, end }, ["pools", id, "timeWindow"], "pool");
      if (window) pools[id] = poolDefinition(`${namespace}:${id}`, p, window.begin, window.end);
    }

    const sales: Record<string, SaleDefinition> = {};
    for (const [id, f] of Object.entries(a.sales)) {
      const window = this.window(f.timeWindow, a.timezone, { begin, end }, ["sales", id, "timeWindow"], "sale");
      if (f.shards > f.stock) this.issue(["sales", id, "shards"], "a sale cannot have more shards than units of stock");
      if (window) sales[id] = saleDefinition(id, f, window.begin, window.end);
    }

    const activity: Omit<CompiledActivity, "tasks"> = {
      id: a.id,
      name: a.name,
      file: this.file,
      timezone: a.timezone,
      namespace,
      begin,
      end,
      windowMessage: a.timeWindow.message ?? "This activity is not running now",
      chances,
      pools,
      managedPools,
      sales,
    };
    const tasks: Record<string, CompiledTask> = {};
    for (const [taskId, t] of Object.entries(a.tasks)) {
      const task = this.task(activity, taskId, t);
      if (task) tasks[taskId] = task;
    }
    return this.issues.length === 0 ? { ...activity, tasks } : undefined;
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

  private task(activity: Omit<CompiledActivity, "tasks">, id: string, t: z.output<typeof Task>): CompiledTask | undefined {
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

    const ctx: CompileContext = { activity, taskId: id, params: t.params };
    const list = (v: z.output<typeof ComponentList> | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
    const validators = t.validator.map((ref, i) => this.place(registry.validators, "validator", ref, [...base, "validator", i], ctx));
    const commands = list(t.command).map((ref, i) => this.place(registry.commands, "command", ref, [...base, "command", i], ctx));
    const rewards = list(t.reward).map((ref, i) => this.place(registry.rewards, "reward", ref, [...base, "reward", i], ctx));
    const afterCommands = list(t.afterCommand).map((ref, i) =>
      this.place(registry.commands, "command", ref, [...base, "afterCommand", i], ctx),
    );

    // Anything that works on the user needs `login` earlier in the validator list, so it never meets no user.
    const loginAt = validators.findIndex((v) => v?.def.code === "login");
    validators.forEach((v, i) => {
      if (v && v.def.needsUser && (loginAt === -1 || loginAt > i)) {
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
      afterCommands: afterCommands as Placed<(typeof registry.commands)[number]>[],
      rateLimit: t.rateLimit,
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
      this.issue(path, `unknown ${kind} '${code}'; known: ${defs.map((d) => d.code).join(", ")}`);
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
      for (const i of parsed.error.issues) this.issue([...path, code, ...(i.path as Path)], i.message);
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

/** Compiles a bundle of activity files; throws ConfigError listing every problem in every file. */
export function compileConfig(files: ConfigFile[], version: string): CompiledConfig {
  const issues: ConfigIssue[] = [];
  const activities = new Map<string, CompiledActivity>();
  const namespaces = new Map<string, string>();
  const sales = new Map<string, { file: string; sale: SaleDefinition }>();
  for (const f of files) {
    const c = new FileCompiler(f.name);
    const activity = c.compile(f.source);
    issues.push(...c.issues);
    if (!activity) continue;
    const clash = activities.get(activity.id);
    if (clash) {
      issues.push({ file: f.name, path: "id", reason: `activity '${activity.id}' is also defined in ${clash.file}` });
      continue;
    }
    const owner = namespaces.get(activity.namespace);
    if (owner) {
      issues.push({ file: f.name, path: "account", reason: `account '${activity.namespace}' is already used by ${owner}` });
      continue;
    }
    namespaces.set(activity.namespace, f.name);
    activities.set(activity.id, activity);
    // Sale ids are global (the flash-sale routes name no activity).
    for (const [id, sale] of Object.entries(activity.sales)) {
      const other = sales.get(id);
      if (other) issues.push({ file: f.name, path: `sales.${id}`, reason: `sale '${id}' is also declared in ${other.file}` });
      else sales.set(id, { file: f.name, sale });
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return { version, activities, sales: new Map([...sales].map(([id, s]) => [id, s.sale])) };
}

/** The content hash that names a bundle version: the same files always give the same version. */
export async function bundleHash(files: ConfigFile[]): Promise<string> {
  const canonical = JSON.stringify([...files].sort((a, b) => a.name.localeCompare(b.name)).map((f) => [f.name, f.source]));
  return (await sha256Hex(canonical)).slice(0, 16);
}
