/** Tells a business system what a run did (e.g. as afterCommand), through the delivery outbox with retries. */
import { z } from "zod";
import { planDelivery } from "../../records/deliver";
import { defineCommand } from "../define";

export const notify = defineCommand({
  code: "notify",
  description:
    "POSTs the run's outcome (request id, activity, task, user, params, rewards) as JSON to `url`, asynchronously " +
    "and at least once: written in the same transaction as the grants, retried with backoff, recorded as " +
    "delivered or failed. Signed per Standard Webhooks with the URL origin's secret in WEBHOOK_SECRETS (docs/webhooks.md); receivers verify the signature and de-duplicate on the `webhook-id` header (the delivery id).",
  args: z.object({ url: z.url({ protocol: /^https?$/ }) }).strict(),
  example: { url: "https://partner.example.com/hooks/fanfare" },
  needsUser: true,
  run(run, { url }) {
    planDelivery(run, {
      kind: "notify",
      target: { type: "http", url },
      payload: {
        requestId: run.init.requestId,
        activityId: run.activity.id,
        taskId: run.task.id,
        userId: run.requireUser().id,
        params: run.init.params,
        rewards: run.rewards,
      },
    });
  },
});
