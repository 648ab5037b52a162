/** Judges the run in a risk scene: the risk engine's deny refuses it (RISK_REJECTED), its challenge asks for proof. */
import { z } from "zod";
import { own } from "../../config/compiled";
import { ConfigIdSchema } from "../../config/id";
import { checkActivityCode, consumeActivityCode } from "../../activity-codes/activity-code";
import { judge, refusalOf } from "../../risk/engine";
import { riskClientOf } from "../../risk/subjects";
import { sceneNotDeclared } from "../../risk/scene-definition";
import { ArgsError, defineValidator } from "../define";

export const risk = defineValidator({
  code: "risk",
  description:
    "Judges the run in a risk scene declared under `riskScenes` (a task's `params.riskScene` places it last among " +
    "the validators, just before the conditions and the reward). Suspects (the suspected list) are always sent to " +
    "the risk engine, others when the scene asks `always`; deny answers 403 RISK_REJECTED, challenge 403 " +
    "CHALLENGE_REQUIRED (a run carrying a valid X-Activity-Code passes it, the code used up in its commit), and a timeout or failure follows the scene's `onFailure`. The decision is kept in the run's " +
    "request record.",
  args: z.union([ConfigIdSchema, z.object({ scene: ConfigIdSchema }).strict()]).transform((a) => (typeof a === "string" ? { scene: a } : a)),
  example: { scene: "grab" },
  fromParams: "riskScene",
  needsUser: false,
  skippedByPreview: true,
  prepare(args, { riskScenes }) {
    const scene = own(riskScenes, args.scene);
    if (!scene) throw new ArgsError(sceneNotDeclared(args.scene, riskScenes), ["scene"]);
    return { scene };
  },
  async check(run, { scene }) {
    const { env, ctx, requestId } = run.init;
    const client = riskClientOf(run.user?.id ?? null, run.init.client);
    const decision = await judge(
      env,
      (p) => ctx.waitUntil(p),
      scene,
      { requestId, client, activity: run.activity.id, task: run.task.id, reward: run.task.rewards.map((r) => r.def.code) },
      Date.now(),
    );
    run.riskDecision = decision;
    const refusal = refusalOf(decision);
    // A challenge is answered by an activity code (POST /v1/activities/{a}/codes): a valid one passes, used up in the
    // run's commit like the activityCode guard's; a wrong one answers its own code (CODE_INVALID, CODE_EXPIRED, …).
    if (refusal?.code !== "CHALLENGE_REQUIRED" || !run.user || !run.init.client?.activityCode) return refusal;
    const checked = await checkActivityCode(run);
    if (!checked.ok) return checked.rejection;
    consumeActivityCode(run, checked.claims);
    run.riskDecision = { ...decision, challengeAnswered: true };
    return undefined;
  },
});
