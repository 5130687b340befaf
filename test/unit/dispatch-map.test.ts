import { describe, expect, it } from "vitest";
import { type Intent, type IntentType, intentSchema } from "../../src/gitlab/intents.ts";
import type { Handler, IntentHandlers, JobContext } from "../../workers/handlers/context.ts";
import { dispatch, intentHandlers } from "../../workers/handlers/index.ts";

/*
 * Compile-time checks, run by `npm run typecheck` (tsc covers test/): each `@ts-expect-error` below must stay an
 * error, or tsc reports the directive as unused and fails. So a handler map missing an intent type, naming one
 * that does not exist, or registering a handler for the wrong intent does not compile.
 */
const noop = async () => ({});
const onCreated: Handler<Extract<Intent, { type: "project.created" }>> = async (ctx) => ({
  source: ctx.intent.source,
});

// @ts-expect-error "command" is missing: a new intent type without a handler does not compile
const missing: IntentHandlers = {
  "project.created": noop,
  "project.destroyed": noop,
  "project.moved": noop,
  "namespace.renamed": noop,
  "environment.seen": noop,
};

const misspelt: IntentHandlers = {
  ...intentHandlers,
  // @ts-expect-error not an intent type
  "project.renamed": noop,
};

const crossed: IntentHandlers = {
  ...intentHandlers,
  // @ts-expect-error a project.created handler cannot handle commands
  command: onCreated,
};

describe("intent dispatch", () => {
  it("has exactly one handler per intent type of the job schema", () => {
    const types = intentSchema.options.map((o) => o.shape.type.value).sort();
    expect(Object.keys(intentHandlers).sort()).toEqual(types);
    for (const t of types) expect(typeof intentHandlers[t as IntentType]).toBe("function");
    // The maps above exist only to be type-checked.
    expect([missing, misspelt, crossed].length).toBe(3);
  });

  it("routes each intent to the handler registered for its type, and only that one", async () => {
    const calls: string[] = [];
    const spy = (name: IntentType) => async (ctx: JobContext) => {
      calls.push(`${name}<-${ctx.intent.type}`);
      return { handled: name };
    };
    const handlers = Object.fromEntries(
      Object.keys(intentHandlers).map((t) => [t, spy(t as IntentType)]),
    ) as unknown as IntentHandlers;
    for (const type of Object.keys(intentHandlers) as IntentType[]) {
      const ctx = { intent: { type } } as unknown as JobContext;
      expect(await dispatch(ctx, handlers)).toEqual({ handled: type });
    }
    expect(calls).toEqual(Object.keys(intentHandlers).map((t) => `${t}<-${t}`));
  });
});
