/** Judges the run in a risk scene: the risk engine's deny refuses it (RISK_REJECTED), its challenge asks for proof. */
import { z } from "zod";
import { own } from "../../config/compiled";
import { ConfigIdSchema } from "../../config/id";
import { judge, refusalOf } from "../../risk/engine";
import { sceneNotDeclared } from "../../risk/scene-definition";
import { ArgsError, defineValidator } from "../define";

export const risk = defineValidator({
  code: "risk",
  description:
    "Judges the run in a risk scene declared under `riskScenes` (a task's `params.riskScene` places it last among " +
    "the validators, just before the conditions and the reward). Suspects (the suspected list) are always sent to " +
    "the risk engine, others when the scene asks `always`; deny answers 403 RISK_REJECTED, challenge 403 " +
    "CHALLENGE_REQUIRED, and a timeout or failure follows the scene's `onFailure`. The decision is kept in the run's " +
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
    const client = run.init.client ?? { user: run.user?.id ?? null, device: null, ip: null };
    const decision = await judge(
      env,
      (p) => ctx.waitUntil(p),
      scene,
      { requestId, client, activity: run.activity.id, task: run.task.id, reward: run.task.rewards.map((r) => r.def.code) },
      Date.now(),
    );
    run.riskDecision = decision;
    return refusalOf(decision);
  },
});
