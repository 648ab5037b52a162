/** Sign-in: the task needs a signed-in user (a valid bearer token). */
import { z } from "zod";
import { defineValidator } from "../define";

export const login = defineValidator({
  code: "login",
  description:
    "Refuses anonymous requests with UNAUTHENTICATED (clients redirect to sign-in on that code). Must come before " +
    "any component that works on the user: lock, limit, chances, and every reward.",
  args: z.object({ message: z.string().optional() }).strict().optional(),
  needsUser: false,
  prepare: (args) => ({ message: args?.message ?? "Sign in to take part" }),
  check(run, { message }) {
    return run.user ? undefined : { code: "UNAUTHENTICATED", message };
  },
});
