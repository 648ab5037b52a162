/**
 * The benefits center's catalog: the `materials:` and `benefits:` of the membership file, compiled once with every
 * cross-reference checked (identity types, code pools, point programs, materials) and each problem at its path.
 */
import type { CodePool } from "../codes/code-pool-definition";
import { didYouMean } from "../config/suggest";
import { notATime, parseActivityTime } from "../config/time";
import type { MembershipProgram } from "../membership/program";
import type { PointProgram } from "../points/program";
import type { IssueSink } from "../users/profile-definition";
import { type Benefit, BenefitSchema, BenefitsSchema } from "./benefit";
import { type Material, MaterialSchema, MaterialsSchema, material } from "./material";

/** The compiled catalog: plain data, by id; benefits in their rights-center order. */
export interface BenefitCatalog {
  materials: Record<string, Material>;
  benefits: Benefit[];
}

interface Known {
  program: MembershipProgram;
  codePools: Readonly<Record<string, CodePool>>;
  pointPrograms: Readonly<Record<string, PointProgram>>;
}

type Path = (string | number)[];

/** The catalog the membership file declares (empty when it declares none); undefined when it has problems, reported. */
export function compileCatalog(fields: Record<string, unknown>, sink: IssueSink, known: Known): BenefitCatalog | undefined {
  let ok = true;
  const fail = (path: Path, reason: string) => {
    ok = false;
    sink.issue(path, reason);
  };
  const section = (key: "materials" | "benefits", schema: typeof MaterialsSchema) => {
    if (fields[key] === undefined) return {};
    const parsed = schema.safeParse(fields[key]);
    if (parsed.success) return parsed.data;
    ok = false;
    sink.zodIssues([key], schema, parsed.error);
    return {};
  };
  const unknownId = (what: string, id: string, declared: string[]) =>
    `unknown ${what} '${id}'${didYouMean(id, declared)}; declared: ${declared.join(", ") || "none"}`;

  const materials: Record<string, Material> = {};
  const rawMaterials = section("materials", MaterialsSchema);
  const poolIds = Object.keys(known.codePools);
  for (const [id, raw] of Object.entries(rawMaterials)) {
    const m = MaterialSchema.safeParse(raw);
    if (!m.success) {
      ok = false;
      sink.zodIssues(["materials", id], MaterialSchema, m.error);
      continue;
    }
    if (m.data.type === "redeemCode") {
      const pool = Object.hasOwn(known.codePools, m.data.codePool) ? known.codePools[m.data.codePool] : undefined;
      if (!pool) fail(["materials", id, "codePool"], unknownId("code pool", m.data.codePool, poolIds));
      else if (pool.kind !== "issue")
        fail(
          ["materials", id, "codePool"],
          `code pool '${pool.id}' holds card codes (kind: ${pool.kind}); a redeem code comes from a pool of kind issue`,
        );
    }
    if (m.data.type === "discount" && m.data.issuance !== "onIdentityGrant")
      fail(["materials", id, "issuance"], "a discount is passive: it applies while the identity is held (issuance: onIdentityGrant)");
    materials[id] = material(id, m.data);
  }

  const benefits: Benefit[] = [];
  const materialIds = Object.keys(rawMaterials);
  const typeIds = Object.keys(known.program.identityTypes);
  const pointIds = Object.keys(known.pointPrograms);
  for (const [id, raw] of Object.entries(section("benefits", BenefitsSchema))) {
    const path = ["benefits", id];
    const b = BenefitSchema.safeParse(raw);
    if (!b.success) {
      ok = false;
      sink.zodIssues(path, BenefitSchema, b.error);
      continue;
    }
    const d = b.data;
    const m = Object.hasOwn(materials, d.material) ? materials[d.material] : undefined;
    if (!m && !Object.hasOwn(rawMaterials, d.material)) fail([...path, "material"], unknownId("material", d.material, materialIds));
    d.entitles.identityTypes?.forEach((t, i) => {
      if (!Object.hasOwn(known.program.identityTypes, t)) fail([...path, "entitles", "identityTypes", i], unknownId("identity type", t, typeIds));
    });
    if (d.price && !Object.hasOwn(known.pointPrograms, d.price.program))
      fail([...path, "price", "program"], unknownId("point program", d.price.program, pointIds));
    if (d.price && m?.type === "discount") fail([...path, "price"], "a discount is passive: it is never claimed, so it has no price");
    if (d.quota && m?.type === "discount") fail([...path, "quota"], "a discount is passive: it is never claimed, so it has no quota");
    // A benefit given with the identity (or monthly) is given, not bought: one per segment (or month), for nothing.
    if (m && m.type !== "discount" && m.issuance !== "onClaim") {
      if (d.price)
        fail(
          [...path, "price"],
          `material '${m.id}' is given ${m.issuance === "monthly" ? "monthly" : "with the identity"}: only a claimed benefit has a price`,
        );
      if (d.quota)
        fail(
          [...path, "quota"],
          `material '${m.id}' is given ${m.issuance === "monthly" ? "once a month" : "once per segment"}: only a claimed benefit has a quota`,
        );
    }
    if (d.stock !== undefined && m?.type === "discount") fail([...path, "stock"], "a discount is passive: it is never claimed, so it has no stock");
    if (d.stock !== undefined && m && m.issuance !== "onClaim")
      fail([...path, "stock"], `a stock counts claims, and material '${m.id}' is not claimed (issuance: ${m.issuance})`);
    if (d.validity && m?.type === "discount") fail([...path, "validity"], "a discount is passive: it is never given, so it has no validity");
    if (d.stockShards !== undefined && d.stock === undefined) fail([...path, "stockShards"], "stockShards spreads a stock: set stock too");
    if (d.stockShards !== undefined && d.stock !== undefined && d.stockShards > d.stock)
      fail([...path, "stockShards"], `at most one shard per unit: ${d.stockShards} shards for a stock of ${d.stock}`);
    let window: Benefit["window"] = null;
    if (d.window) {
      const begin = parseActivityTime(d.window.beginTime, known.program.timezone);
      const end = parseActivityTime(d.window.endTime, known.program.timezone);
      if (begin === null) fail([...path, "window", "beginTime"], notATime(d.window.beginTime));
      if (end === null) fail([...path, "window", "endTime"], notATime(d.window.endTime));
      if (begin !== null && end !== null) {
        if (begin >= end) fail([...path, "window", "endTime"], "endTime must be after beginTime");
        window = { begin, end };
      }
    }
    if (!m) continue;
    benefits.push({
      id,
      title: d.title,
      order: d.order,
      material: m,
      entitles: {
        identityTypes: d.entitles.identityTypes ?? null,
        minRank: d.entitles.minRank ?? null,
        sources: d.entitles.sources ?? null,
        channels: d.entitles.channels ?? null,
      },
      window,
      validity: d.validity ?? null,
      price: d.price ?? null,
      quota: d.quota ?? null,
      stock: d.stock === undefined ? null : { total: d.stock, shards: d.stockShards ?? 1 },
    });
  }
  if (!ok) return undefined;
  benefits.sort((a, b) => a.order - b.order || (a.id < b.id ? -1 : 1));
  return { materials, benefits };
}

/** The catalog's benefit `id`, or undefined. */
export function benefitOf(catalog: BenefitCatalog | undefined, id: string): Benefit | undefined {
  return catalog?.benefits.find((b) => b.id === id);
}
