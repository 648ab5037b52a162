/** Every component code the config may name. Adding a component is its file and one line here. */
import type { CommandDefinition, RewardDefinition, ValidatorDefinition } from "./define";
import { timeWindow } from "./validators/time-window";
import { login } from "./validators/login";
import { lock } from "./validators/lock";
import { limit } from "./validators/limit";
import { chances } from "./validators/chances";
import { log } from "./commands/log";
import { notify } from "./commands/notify";
import { chancesReward } from "./rewards/chances";
import { redPacket } from "./rewards/red-packet";
import { coupon } from "./rewards/coupon";
import { lottery } from "./rewards/lottery";
import { pointsReward } from "./rewards/points";
import { redeemCode } from "./rewards/redeem-code";
import { spendPoints } from "./validators/spend-points";
import { partnerBenefit } from "./rewards/partner-benefit";
import { membershipReward } from "./rewards/membership";
import { activityCode } from "./validators/activity-code";
import { stock } from "./validators/stock";
import { risk } from "./validators/risk";

export const validators: ValidatorDefinition<any, any>[] = [timeWindow, login, lock, limit, chances, spendPoints, activityCode, stock, risk];
export const commands: CommandDefinition<any, any>[] = [log, notify];
export const rewards: RewardDefinition<any, any>[] = [
  chancesReward,
  redPacket,
  coupon,
  lottery,
  pointsReward,
  redeemCode,
  partnerBenefit,
  membershipReward,
];
