/**
 * The worker's one logger: a JSON line per event (`level`, `message`, then the event's fields), so Workers Logs can
 * filter by any field. Errors in fields are written as their message (and stack, under `stack`).
 */
type Level = "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

function line(level: Level, message: string, fields: LogFields): string {
  const out: LogFields = { level, message };
  for (const [k, v] of Object.entries(fields)) {
    if (v instanceof Error) {
      out[k] = String(v);
      out.stack ??= v.stack;
    } else out[k] = v;
  }
  return JSON.stringify(out);
}

export const log = {
  info: (message: string, fields: LogFields = {}) => console.log(line("info", message, fields)),
  warn: (message: string, fields: LogFields = {}) => console.warn(line("warn", message, fields)),
  error: (message: string, fields: LogFields = {}) => console.error(line("error", message, fields)),
};
