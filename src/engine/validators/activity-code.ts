/** The activity-code guard: a run needs a fresh single-use code (X-Activity-Code), used up in its commit. */
import { z } from "zod";
import { checkActivityCode, consumeActivityCode, MAX_CODE_TTL_SECONDS } from "../../activity-codes/activity-code";
import { defineValidator } from "../define";

export const activityCode = defineValidator({
  code: "activityCode",
  description:
    "Makes bots prove a real client: the run must carry an activity code in the `X-Activity-Code` header, issued by " +
    "POST /v1/activities/{activityId}/codes to this user for this task (and to the device of `X-Device-Id`, when the " +
    "code names one). Without one the run is refused with CODE_REQUIRED (the configured message); a code of another " +
    "user, task or device with CODE_INVALID; an expired one with CODE_EXPIRED; a used one with CODE_USED. The code " +
    "is used up in the run's commit, so of concurrent runs with one code exactly one passes, and a run refused at any " +
    "step leaves it unused. `ttlSeconds` (at most 300) is how long codes for this task live; `turnstile: true` makes " +
    "issuing one require a Cloudflare Turnstile token, checked with Turnstile's siteverify.",
  args: z
    .object({
      ttlSeconds: z.number().int().min(10).max(MAX_CODE_TTL_SECONDS).default(MAX_CODE_TTL_SECONDS),
      turnstile: z.boolean().default(false),
      message: z.string().min(1).optional(),
    })
    .strict()
    .optional(),
  example: { ttlSeconds: 120, turnstile: true, message: "Please verify you are human to continue" },
  needsUser: true,
  prepare: (args) => ({
    ttlSeconds: args?.ttlSeconds ?? MAX_CODE_TTL_SECONDS,
    turnstile: args?.turnstile ?? false,
    message: args?.message,
  }),
  async check(run, { message }) {
    const checked = await checkActivityCode(run);
    if (!checked.ok) return checked.rejection.code === "CODE_REQUIRED" && message ? { code: "CODE_REQUIRED", message } : checked.rejection;
    consumeActivityCode(run, checked.claims);
    return undefined;
  },
});
