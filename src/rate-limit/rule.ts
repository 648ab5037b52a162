/** A rate-limit rule as operators write it (per task, per flash sale's grab route), and the result of one check. */
import { z } from "zod";

export const RateLimitRuleSchema = z
  .object({
    /** Requests allowed per window. */
    requests: z.number().int().min(1).max(1_000_000),
    /** The sliding window's length. */
    windowSeconds: z.number().int().min(1).max(86_400),
    /** Whose requests share the allowance: the signed-in user, the `X-Device-Id` header, the client IP, or everyone. */
    by: z.enum(["user", "device", "ip", "global"]).default("user"),
  })
  .strict();

export type RateLimitRule = z.output<typeof RateLimitRuleSchema>;

/** One rule or several (e.g. per user and a global ceiling); all must allow a request. */
export const RateLimitSchema = z
  .union([RateLimitRuleSchema, z.array(RateLimitRuleSchema).min(1).max(4)])
  .transform((r) => (Array.isArray(r) ? r : [r]));

export interface RateLimitResult {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Epoch ms when the allowance is whole again (the current window's end). */
  resetAt: number;
  /** The backend did not answer in time and the request was let through. */
  failedOpen?: boolean;
}
