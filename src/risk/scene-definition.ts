/**
 * Risk scenes as operators declare them (top-level `riskScenes:`): per scene, the detectors counted at the edge of
 * its grant routes, how its risk engine is asked, and its alert rules. Plain data, compiled once with the bundle.
 */
import { z } from "zod";
import { ConfigIdSchema } from "../config/id";
import { didYouMean } from "../config/suggest";

/** Who a detector counts: the signed-in user, the `X-Device-Id` header, or the client's address. */
export const SubjectKindSchema = z.enum(["user", "device", "ip"]);
export type SubjectKind = z.output<typeof SubjectKindSchema>;

const DetectorSchema = z
  .object({
    by: SubjectKindSchema,
    /** Requests of one subject allowed per sliding window on the scene's grant routes; the next one crosses. */
    requests: z.number().int().min(1).max(1_000_000),
    windowSeconds: z.number().int().min(1).max(86_400),
    /**
     * On a crossing: `flag` puts the subject on the suspected list and lets the request through (a suspect is then
     * always judged by the risk engine); `refuse` answers 429 RATE_LIMITED; `flagAndRefuse` does both.
     */
    action: z.enum(["flag", "refuse", "flagAndRefuse"]).default("flag"),
    /** How long a flagged subject stays suspected. */
    suspectForSeconds: z
      .number()
      .int()
      .min(60)
      .max(90 * 86_400)
      .default(86_400),
  })
  .strict();

/** What a risk alert is raised on. */
export const AlertEventSchema = z.enum(["flagged", "denied", "challenged", "blacklisted"]);
export type AlertEvent = z.output<typeof AlertEventSchema>;

const AlertRuleSchema = z
  .object({
    on: AlertEventSchema,
    /** One alert per subject and rule per window: the rest of the window's events of that subject are not sent. */
    windowSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 86_400)
      .default(3600),
    /** Where it is POSTed, signed per Standard Webhooks (WEBHOOK_SECRETS holds the origin's secret); default OPERATOR_ALERT_URL. */
    url: z.url({ protocol: /^https?$/ }).optional(),
  })
  .strict();

/** One scene as written in YAML. */
export const RiskSceneSchema = z
  .object({
    description: z.string().min(1).max(500).optional(),
    engine: z
      .object({
        /**
         * Who is sent to the risk engine (RISK_ENGINE_URL): `suspected` subjects only (the others are allowed without
         * a call), or `always` every request. Suspects are always sent.
         */
        ask: z.enum(["suspected", "always"]).default("suspected"),
        /** How long to wait for the engine's answer. */
        timeoutMs: z.number().int().min(10).max(10_000).default(300),
        /** What a timeout, an error or an unreadable answer decides: `open` allows, `closed` denies. */
        onFailure: z.enum(["open", "closed"]).default("open"),
        /** Whether an engine's `deny` with `"blacklist": true` puts the user on the blacklist. */
        confirmBlacklist: z.boolean().default(true),
      })
      .strict()
      .default({ ask: "suspected", timeoutMs: 300, onFailure: "open", confirmBlacklist: true }),
    detectors: z.record(ConfigIdSchema, DetectorSchema).default({}),
    alerts: z.record(ConfigIdSchema, AlertRuleSchema).default({}),
  })
  .strict();

/** The `riskScenes` section: scenes by id. */
export const RiskScenesSchema = z.record(ConfigIdSchema, z.unknown());

export type Detector = z.output<typeof DetectorSchema> & { id: string };
export type AlertRule = z.output<typeof AlertRuleSchema> & { id: string };

export interface RiskScene {
  /** Global id (bundle-wide): tasks (`params.riskScene`, the `risk` validator) and sales (`riskScene`) name it. */
  id: string;
  description: string | null;
  engine: z.output<typeof RiskSceneSchema>["engine"];
  detectors: Detector[];
  alerts: AlertRule[];
}

export function riskScene(id: string, s: z.output<typeof RiskSceneSchema>): RiskScene {
  return {
    id,
    description: s.description ?? null,
    engine: s.engine,
    detectors: Object.entries(s.detectors).map(([detectorId, d]) => ({ id: detectorId, ...d })),
    alerts: Object.entries(s.alerts).map(([ruleId, a]) => ({ id: ruleId, ...a })),
  };
}

/** The reason a config gives for naming a scene the bundle does not declare. */
export function sceneNotDeclared(id: string, scenes: Readonly<Record<string, unknown>>): string {
  const declared = Object.keys(scenes);
  return `unknown risk scene '${id}'${didYouMean(id, declared)}; declared under riskScenes: ${declared.join(", ") || "none"}`;
}
