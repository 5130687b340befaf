// Preloaded with `node --import` by tests that must know which modules a process loaded (for example, that
// with tracing off no OpenTelemetry module is loaded). Writes every loaded URL, one per line, to
// $GEB_MODULES_OUT when the process exits. Sees both import and require (module.registerHooks, Node 22.15+).
import { writeFileSync } from "node:fs";
import { registerHooks } from "node:module";

const out = process.env.GEB_MODULES_OUT;
const seen = new Set();
registerHooks({
  load(url, context, nextLoad) {
    seen.add(url);
    return nextLoad(url, context);
  },
});
process.on("exit", () => {
  if (out) writeFileSync(out, [...seen].join("\n"));
});
