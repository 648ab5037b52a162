/** `timeOfDay`: now lies between two wall-clock times in the activity's timezone (wrapping past midnight). */
import { z } from "zod";
import { localTimeOfWeek } from "../../config/time";
import { defineCondition } from "./define";

const HHMM = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "a time of day is HH:MM, 00:00 to 23:59");
const minutes = (t: string) => Number(t.slice(0, 2)) * 60 + Number(t.slice(3));
const pad = (n: number) => String(n).padStart(2, "0");
/** "HH:MM" of every minute of the day, made once: the explanation shows one per evaluation. */
const CLOCK = Array.from({ length: 1440 }, (_, m) => `${pad(Math.floor(m / 60))}:${pad(m % 60)}`);

export const timeOfDay = defineCondition({
  code: "timeOfDay",
  description:
    "Now is at or after `from` and before `to` (HH:MM, in the activity's timezone). When `to` is earlier than " +
    '`from` the span wraps past midnight (`{from: "22:00", to: "02:00"}`).',
  args: z
    .object({ from: HHMM, to: HHMM })
    .strict()
    .refine((a) => a.from !== a.to, { message: "from and to must differ", path: ["to"] }),
  example: { from: "09:00", to: "12:00" },
  needs: ["clock"],
  prepare: (a) => ({ from: minutes(a.from), to: minutes(a.to), expected: { from: a.from, to: a.to } }),
  evaluate(facts, a) {
    const t = localTimeOfWeek(facts.now, facts.timezone).minuteOfDay;
    const pass = a.from < a.to ? t >= a.from && t < a.to : t >= a.from || t < a.to;
    return { pass, actual: CLOCK[t], expected: a.expected };
  },
});
