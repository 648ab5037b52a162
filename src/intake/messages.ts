/** The INTAKE queue's message contract: one queued grab or task run, carrying all it needs to run as its request would have. */
import type { RunClient, User } from "../engine/run";
import type { BusinessEvent } from "../events/process";

interface Ticketed {
  /** The ticket the run answers: an Idempotency-Key of the user's account in the `tickets` namespace. */
  ticketId: string;
  /** The intake request's time: the run is decided as of it (the sale's or the activity's window, the day's limits). */
  now: number;
  /** The intake request's id, which the logs of the run name. */
  requestId: string;
}

export type IntakeMessage =
  | (Ticketed & { kind: "grab"; saleId: string; userId: string })
  | (Ticketed & {
      kind: "task";
      activityId: string;
      taskId: string;
      method: string;
      user: User;
      query: Record<string, string>;
      body: Record<string, unknown>;
      /** The request's activity code, device and address, judged by the run as of the intake request's time. */
      client?: RunClient;
    })
  /** A business event to run (src/events): its "ticket" is its outcome's key in the user's `events` namespace. */
  | (Ticketed & {
      kind: "event";
      event: BusinessEvent;
      fingerprint: string;
      /** The service key that sent the event (null: Fanfare's own); its runs' records name it. */
      keyId?: string | null;
    });
