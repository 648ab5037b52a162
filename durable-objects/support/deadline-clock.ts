/**
 * The clock a shard's deadlines (claim deadlines, checkout deadlines) run on, shared by prize-pool and stock shards.
 * Normally the wall clock, with an alarm at the next deadline. When tests or benchmarks replay time
 * (ALLOW_CLOCK_OVERRIDE, X-Fanfare-Now), it is the latest request time seen: deadlines are then met by the requests
 * that bring time on, and the alarm must not expire anything by the wall clock.
 */
import { vars } from "../../src/platform/vars";
import type { Env } from "../../src/env";

export class DeadlineClock {
  private requestTime = 0;

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly env: Env,
    /**
     * "wall" for deadlines that are about the machinery, not the activity's time (a reservation held while its run
     * commits): they run on the real clock even when requests replay time.
     */
    private readonly kind: "request" | "wall" = "request",
  ) {}

  private get replayed(): boolean {
    return this.kind === "request" && vars(this.env).ALLOW_CLOCK_OVERRIDE === "true";
  }

  /** Notes a request's time (reads that only look must not move the clock). */
  observe(now: number) {
    this.requestTime = Math.max(this.requestTime, now);
  }

  /** The latest request time seen (0 before any). */
  get latestRequest(): number {
    return this.requestTime;
  }

  /** What "now" is for an alarm. */
  alarmNow(): number {
    return this.replayed ? this.requestTime : Date.now();
  }

  /** Makes sure an alarm fires by `at` (not with replayed time), leaving an earlier one alone. */
  async wakeBy(at: number) {
    if (this.replayed) return;
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }
}
