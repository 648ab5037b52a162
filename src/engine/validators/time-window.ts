/** The time window: the task runs only between beginTime and endTime. */
import { z } from "zod";
import { notATime, parseActivityTime } from "../../config/time";
import { ArgsError, defineValidator } from "../define";

export const timeWindow = defineValidator({
  code: "timeWindow",
  description:
    "Refuses requests outside the task's time window with OUTSIDE_TIME_WINDOW. Times are ISO 8601 or the wall-clock form " +
    "`2019-11-06 00:00:00` in the activity's timezone. Used bare, it reads `params.timeWindow`, else the activity's window.",
  args: z
    .object({
      beginTime: z.string().optional(),
      endTime: z.string().optional(),
      message: z.string().optional(),
    })
    .strict()
    .optional(),
  fromParams: "timeWindow",
  example: { beginTime: "2019-11-06 00:00:00", endTime: "2019-11-10 23:59:59", message: "The event is not on now" },
  needsUser: false,
  prepare(args, { activity }) {
    const at = (field: "beginTime" | "endTime", fallback: number) => {
      const text = args?.[field];
      if (text === undefined) return fallback;
      const ms = parseActivityTime(text, activity.timezone);
      if (ms === null) throw new ArgsError(notATime(text), [field]);
      return ms;
    };
    const begin = at("beginTime", activity.begin);
    const end = at("endTime", activity.end);
    if (begin >= end) throw new ArgsError("beginTime must be before endTime", ["endTime"]);
    if (begin < activity.begin || end > activity.end) {
      throw new ArgsError("the task's window must lie inside the activity's timeWindow");
    }
    return { begin, end, message: args?.message ?? "This task is not open now" };
  },
  check(run, { begin, end, message }) {
    if (run.now < begin || run.now > end) return { code: "OUTSIDE_TIME_WINDOW", message };
    return undefined;
  },
});
