/**
 * User segments (crowds): who a user is, declared once per bundle under a top-level `segments:` and named by the
 * `bySegment` reward-tree node. Three kinds: `rule` (a condition tree over the user's profile attributes and groups),
 * `static` (a list of user ids uploaded through the admin API, src/segments/static-lists.ts) and `external` (a crowd
 * service asked over HTTP, src/segments/crowd-service.ts). A node tries its segments by priority, highest first.
 */
import { z } from "zod";
import { compileTree, type ConditionTree, type TreeContext } from "../engine/conditions/tree";
import type { IssueSink } from "../users/profile-definition";

/** A segment as requests meet it. */
export type UserSegment = {
  id: string;
  /** Higher is tried first; ties keep the order the node lists them in. */
  priority: number;
  description?: string;
  file: string;
} & (
  | { kind: "rule"; rule: ConditionTree }
  | { kind: "static" }
  | {
      kind: "external";
      url: string;
      /** How long a call may take before the fallback answers. */
      timeoutMs: number;
      /** How long an answer is reused in an isolate. */
      ttlMs: number;
      /** The membership assumed when the service fails, times out or answers something else. */
      fallback: boolean;
    }
);

const Priority = z.number().int().min(-1_000_000).max(1_000_000).default(0);
const Description = z.string().min(1).optional();

export const SegmentSchema = z.discriminatedUnion("kind", [
  // The tree is compiled on its own below, so each problem has its own path.
  z.object({ kind: z.literal("rule"), priority: Priority, description: Description, when: z.unknown().optional() }).strict(),
  z.object({ kind: z.literal("static"), priority: Priority, description: Description }).strict(),
  z
    .object({
      kind: z.literal("external"),
      priority: Priority,
      description: Description,
      url: z.url({ protocol: /^https?$/ }),
      timeoutMs: z.number().int().min(10).max(5_000).default(100),
      ttlSeconds: z.number().int().min(0).max(86_400).default(60),
      fallback: z.boolean().default(false),
    })
    .strict(),
]);

export const SegmentsSchema = z.record(z.string(), z.unknown());

/** What a segment's rule may read: who the user is (attributes, groups), nothing that changes with what the user does. */
const SEGMENT_TREES: Pick<TreeContext, "unavailable" | "noActivityScope"> = {
  unavailable: {
    event: "a segment is judged without a business event",
    participations: "a segment is who the user is, not what the user did in an activity",
    points: "a segment is who the user is: use a task's `when:` for balances",
    orders: "a segment is who the user is: use a task's `when:` for order history",
    identities: "a segment reads profile attributes and groups; a task's `when:` reads identities",
    clock: "a segment is who the user is, not when: put times in a task's `when:`",
  },
  noActivityScope: "a segment keeps no progress between runs",
};

/** Compiles one entry of `segments:` (its problems go to `sink` under `segments.<id>`). */
export function compileSegment(file: string, id: string, parsed: z.output<typeof SegmentSchema>, sink: IssueSink): UserSegment | undefined {
  const base = { id, priority: parsed.priority, file, ...(parsed.description && { description: parsed.description }) };
  if (parsed.kind === "static") return { ...base, kind: "static" };
  if (parsed.kind === "external") {
    return { ...base, kind: "external", url: parsed.url, timeoutMs: parsed.timeoutMs, ttlMs: parsed.ttlSeconds * 1000, fallback: parsed.fallback };
  }
  if (parsed.when === undefined) {
    sink.issue(["segments", id, "when"], "a rule segment needs `when:`, a condition tree over profile attributes and groups");
    return undefined;
  }
  const compiled = compileTree(parsed.when, { timezone: "UTC", taskIds: [], pointPrograms: [], identityTypes: {}, ...SEGMENT_TREES });
  if ("issues" in compiled) {
    for (const i of compiled.issues) sink.issue(["segments", id, "when", ...i.path], i.reason);
    return undefined;
  }
  return { ...base, kind: "rule", rule: compiled.tree };
}
