/** Every condition code a tree may name. Adding a condition is its file and one line here. */
import type { ConditionDefinition } from "./define";
import { event } from "./event";
import { attribute } from "./attribute";
import { group } from "./group";
import { participations } from "./participations";
import { newUser } from "./new-user";
import { firstOrder } from "./first-order";
import { pointsBalance } from "./points-balance";
import { timeOfDay } from "./time-of-day";
import { dayOfWeek } from "./day-of-week";
import { identity } from "./identity";

export const conditions: ConditionDefinition<any, any>[] = [
  event,
  attribute,
  group,
  participations,
  newUser,
  firstOrder,
  pointsBalance,
  timeOfDay,
  dayOfWeek,
  identity,
];
