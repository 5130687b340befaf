import { describe, expect, it } from "vitest";
import { seedDirectory } from "../../src/sandbox/entra-sim/seed.ts";
import { newState } from "../../src/sandbox/entra-sim/state.ts";
import { addProjects, createState } from "../../src/sandbox/gitlab-sim/state.ts";

const BOT = "b0000000-0000-4000-8000-000000000000";
const GROUP = "g0000000-0000-4000-8000-000000000000";

describe("simulator seeds (plain data for benchmarks)", () => {
  it("the directory seed stores apps, principals, credentials and members as the bot's own creates", () => {
    const state = newState([{ id: GROUP, displayName: "g" }]);
    seedDirectory(
      state,
      BOT,
      {
        applications: [
          {
            id: "app-1",
            appId: "client-1",
            displayName: "gitlab-p-staging",
            tags: ["gitlab-entra-bot"],
            federatedIdentityCredentials: [
              { name: "main", issuer: "https://gl", subject: "s", audiences: ["api://AzureADTokenExchange"] },
            ],
            servicePrincipal: { id: "sp-1" },
            memberOf: [GROUP],
          },
          { id: "app-2", appId: "client-2", displayName: "other", owners: ["someone"] },
        ],
      },
      0,
    );
    const app = state.applications.get("app-1");
    expect(app?.owners).toEqual([BOT]);
    expect(app?.fics.map((f) => [f.name, f.subject, f.claimsMatchingExpression])).toEqual([
      ["main", "s", null],
    ]);
    expect(state.servicePrincipals.get("sp-1")).toMatchObject({ appId: "client-1", owners: [BOT] });
    expect([...(state.groups.get(GROUP)?.members ?? [])]).toEqual(["sp-1"]);
    expect(state.applications.get("app-2")?.owners).toEqual(["someone"]);
    expect(state.servicePrincipals.size).toBe(1);
  });

  it("a member of a group that does not exist is refused", () => {
    const state = newState([]);
    expect(() =>
      seedDirectory(
        state,
        BOT,
        {
          applications: [
            { id: "a", appId: "c", displayName: "d", servicePrincipal: { id: "s" }, memberOf: [GROUP] },
          ],
        },
        0,
      ),
    ).toThrow(/does not exist/);
  });

  it("bulk projects keep addProject's uniqueness rules (id, path regardless of case)", () => {
    const state = createState();
    const defaults = { subClaimSupport: "modern" as const };
    addProjects(state, [{ id: 1, path: "g/a", environments: ["staging"] }, { path: "g/b" }], defaults);
    expect(state.projects.map((p) => [p.id, p.path, p.environments.map((e) => e.name)])).toEqual([
      [1, "g/a", ["staging"]],
      [101, "g/b", []],
    ]);
    expect(() => addProjects(state, [{ id: 1, path: "g/c" }], defaults)).toThrow(/already exists/);
    expect(() => addProjects(state, [{ id: 9, path: "G/A" }], defaults)).toThrow(/is taken/);
  });
});
