import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Histogram } from "prom-client";
import { afterAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { registry } from "../../src/http/metrics.ts";

/**
 * The Grafana dashboard and the Prometheus alert rules (deploy/observability) against the metrics the bot
 * really exports: a renamed or removed metric breaks this test, not a dashboard in production. promtool
 * (Debian's prometheus package; .ci/run unpacks it and sets PROMTOOL) checks the rules, runs their unit tests,
 * and parses every dashboard query. Skipped only on a developer machine without promtool; in CI it must run.
 */

const DIR = fileURLToPath(new URL("../../deploy/observability/", import.meta.url));
const README = readFileSync(fileURLToPath(new URL("../../README.md", import.meta.url)), "utf8");
const PROMTOOL = process.env.PROMTOOL ?? "promtool";

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = (
  parseYaml(readFileSync(join(DIR, "alerts.rules.yaml"), "utf8")) as { groups: { rules: Rule[] }[] }
).groups.flatMap((g) => g.rules);

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: { expr: string; refId: string }[];
}
const dashboard = JSON.parse(readFileSync(join(DIR, "grafana-dashboard.json"), "utf8")) as {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string }[] };
};
const queries = dashboard.panels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
);

/** Every series name the bot exports: histograms also as _bucket, _count and _sum. */
const exported = new Set(
  registry
    .getMetricsAsArray()
    .flatMap((m) =>
      m instanceof Histogram ? [m.name, `${m.name}_bucket`, `${m.name}_count`, `${m.name}_sum`] : [m.name],
    ),
);

const metricNames = (expr: string) => [...new Set(expr.match(/\bgeb_[a-z0-9_]+\b/g) ?? [])];

describe("dashboard and alert rules use only metrics the bot exports", () => {
  it("the metric registry lists the histograms with their series suffixes", () => {
    expect(exported).toContain("geb_job_duration_seconds_bucket");
    expect(exported).toContain("geb_intake_duration_seconds_count");
  });

  it("every metric in every alert rule exists in src/http/metrics.ts", () => {
    const unknown = rules.flatMap((r) =>
      metricNames(r.expr)
        .filter((n) => !exported.has(n))
        .map((n) => `${r.alert}: ${n}`),
    );
    expect(unknown).toEqual([]);
    expect(rules.every((r) => metricNames(r.expr).length > 0)).toBe(true);
  });

  it("every metric in every dashboard query exists in src/http/metrics.ts", () => {
    expect(queries.length).toBeGreaterThan(15);
    const unknown = queries.flatMap((q) =>
      metricNames(q.expr)
        .filter((n) => !exported.has(n))
        .map((n) => `${q.panel}: ${n}`),
    );
    expect(unknown).toEqual([]);
  });

  it("the dashboard shows every geb_ metric the bot exports", () => {
    const used = new Set(
      queries.flatMap((q) => metricNames(q.expr)).map((n) => n.replace(/_(bucket|count|sum)$/, "")),
    );
    const ours = registry
      .getMetricsAsArray()
      .map((m) => m.name)
      .filter((n) => n.startsWith("geb_"));
    expect(ours.filter((n) => !used.has(n))).toEqual([]);
  });
});

describe("alert rules", () => {
  it("cover what operators must hear about", () => {
    expect(rules.map((r) => r.alert).sort()).toEqual(
      [
        "GebDeliveriesRefused",
        "GebDriftFound",
        "GebGraphPermissionDenied",
        "GebJobsFailed",
        "GebJobsStuck",
        "GebOwnershipCollision",
        "GebQueuePaused",
        "GebThrottled",
        "GebWebhooksFailing",
        "GebWebhooksRejected",
      ].sort(),
    );
  });

  it("each has a severity, a summary and a runbook_url whose anchor exists in the README", () => {
    for (const r of rules) {
      expect(["critical", "warning"], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      const anchor = r.annotations?.runbook_url?.match(/^README\.md#(alert-[a-z]+)$/)?.[1];
      expect(anchor, `${r.alert} runbook_url`).toBe(`alert-${r.alert?.toLowerCase()}`);
      expect(README, `README anchor ${anchor}`).toContain(`id="${anchor}"`);
    }
  });
});

describe("Grafana dashboard", () => {
  it("is a dashboard Grafana can import: uid, a Prometheus datasource variable, panels on a 24-column grid", () => {
    expect(dashboard.uid).toBe("gitlab-entra-bot");
    expect(dashboard.templating.list).toContainEqual(
      expect.objectContaining({ name: "datasource", type: "datasource", query: "prometheus" }),
    );
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      if (p.type === "row") continue;
      // Grafana's own variable syntax, not a template string.
      expect(p.datasource, p.title).toEqual({ type: "prometheus", uid: ["$", "{datasource}"].join("") });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
    }
  });
});

const hasPromtool = (() => {
  try {
    execFileSync(PROMTOOL, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
if (!hasPromtool) {
  console.warn(`observability: promtool checks skipped, no ${PROMTOOL} (Debian: apt-get install prometheus)`);
}
const tmp = mkdtempSync(join(tmpdir(), "geb-promtool-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const promtool = (...args: string[]) =>
  execFileSync(PROMTOOL, args, { cwd: DIR, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

describe.skipIf(!hasPromtool && !process.env.CI)("promtool", () => {
  it("promtool is available (CI unpacks Debian's prometheus package)", () => {
    expect(hasPromtool).toBe(true);
  });

  it("check rules: the alert rules are valid", () => {
    expect(promtool("check", "rules", "alerts.rules.yaml")).toMatch(/SUCCESS: 10 rules found/);
  });

  it("test rules: each alert fires on the series that should fire it, and not on a look-alike", () => {
    expect(promtool("test", "rules", "alerts.test.yaml")).toMatch(/SUCCESS/);
  });

  it("every dashboard query is valid PromQL (checked as recording rules)", () => {
    const file = join(tmp, "dashboard-queries.rules.yaml");
    const recorded = queries.map((q, i) => ({
      record: `dashboard:query_${i}`,
      // Grafana's variables become what Grafana would substitute.
      expr: q.expr.replaceAll("$__rate_interval", "5m"),
    }));
    writeFileSync(file, stringifyYaml({ groups: [{ name: "dashboard", rules: recorded }] }));
    expect(promtool("check", "rules", file)).toMatch(new RegExp(`SUCCESS: ${queries.length} rules found`));
    // And promtool does reject a broken query: the check above can fail.
    writeFileSync(
      file,
      stringifyYaml({ groups: [{ name: "x", rules: [{ record: "x:y", expr: "sum(rate(geb_x[5m])" }] }] }),
    );
    expect(() => promtool("check", "rules", file)).toThrow();
  });
});
