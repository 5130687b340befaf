import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SandboxStack } from "../../src/sandbox/stack.ts";
import { failures, settled, testStack } from "../helpers/stack.ts";

/**
 * The admin UI through the real HTTP server (node's parser and @hono/node-server in front of Hono), with the
 * admin token and a correct same-origin proof: the attacker here is a page the operator visits, or someone
 * who learnt the token. Adding a job or rewriting job data must stay impossible whatever the path looks like
 * (trailing slash, percent-encoding, dot segments, double slashes, case, matrix parameters, method-override
 * headers), because a hand-made job is the same primitive as a forged webhook.
 */
let stack: SandboxStack;
let failedJobId: string;

beforeAll(async () => {
  stack = await testStack("attack-admin");
  // A failed job whose data an attacker would like to rewrite (then retry).
  const { project } = await stack.driver.createProject("victim/app", { members: { 2: 40 } });
  await settled(stack);
  const q = stack.service.queues.events;
  const job = await q.add(
    "project.created",
    { intent: { type: "bogus" }, trigger: { event: "x", eventId: "x", receivedAt: "x" } },
    { attempts: 1 },
  );
  for (let i = 0; i < 400 && (await q.getJobState(job.id as string)) !== "failed"; i++)
    await new Promise((r) => setTimeout(r, 50));
  failedJobId = job.id as string;
  void project;
});
afterAll(async () => {
  await stack?.close();
});

/** A raw request: the path goes on the wire exactly as written (fetch would normalise it). */
function raw(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; text: string }> {
  const url = new URL(stack.service.url as string);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: { ...headers, ...(body !== undefined ? { "Content-Length": Buffer.byteLength(body) } : {}) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c) => {
          text += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function sameOrigin(): Record<string, string> {
  return {
    Authorization: `Bearer ${stack.secrets.adminToken}`,
    Origin: new URL(stack.service.url as string).origin,
    "Sec-Fetch-Site": "same-origin",
    "Content-Type": "application/json",
  };
}

const FORGED = JSON.stringify({
  name: "project.moved",
  data: {
    intent: {
      type: "project.moved",
      project: { id: 1, path: "evil/x" },
      oldPath: "victim/app",
      how: "rename",
    },
    trigger: { event: "x", eventId: "forged", receivedAt: "x", source: { kind: "instance" }, signed: false },
  },
});

describe("the queue UI cannot add or rewrite jobs, whatever the path looks like", () => {
  it("add: trailing slash, encodings, dot segments, double slashes, case, matrix parameters", async () => {
    const q = stack.service.queues.events;
    const before = await q.count();
    const name = q.name;
    const paths = [
      `/admin/queues/api/queues/${name}/add`,
      `/admin/queues/api/queues/${name}/add/`,
      `/admin/queues/api/queues/${name}/%61dd`,
      `/admin/queues/api/queues/${name}/ad%64`,
      `/admin/queues/api/queues/${encodeURIComponent(name)}/add`,
      `/admin/queues/api/queues/${name.replace(/e/, "%65")}/add`,
      `/admin/queues/api/queues/${name}/./add`,
      `/admin/queues/api/queues/${name}/x/../add`,
      `/admin/queues/api/queues/${name}/x/%2e%2e/add`,
      `/admin/queues/api/queues/${name}/add;x=1`,
      `/admin/queues/api/queues/${name}/add?x=1`,
      `/admin/queues/api/queues/${name}/add#x`,
      `/admin/queues/api/queues/${name}//add`,
      `//admin/queues/api/queues/${name}/add`,
      `/admin//queues/api/queues/${name}/add`,
      `/admin/../admin/queues/api/queues/${name}/add`,
      `/x/../admin/queues/api/queues/${name}/add`,
      `/ADMIN/queues/api/queues/${name}/add`,
      `/admin/queues/api/queues/${name}/ADD`,
      `/admin/queues/api/queues/${name}/add%2f`,
      `/admin/queues/api/queues/${name}%2fadd`,
      `http://evil.example/admin/queues/api/queues/${name}/add`,
    ];
    const answers: Record<string, number> = {};
    for (const path of paths) answers[path] = (await raw("POST", path, sameOrigin(), FORGED)).status;
    if (process.env.ATTACK_DEBUG) console.log(answers);
    expect(await q.count()).toBe(before);
    for (const [path, status] of Object.entries(answers)) expect(status, path).not.toBe(200);
  });

  it("update-data: the same tricks, and method overrides on a POST", async () => {
    const q = stack.service.queues.events;
    const name = q.name;
    const before = JSON.stringify((await q.getJob(failedJobId))?.data);
    const body = JSON.stringify({ data: JSON.parse(FORGED).data });
    const attempts: [string, string, Record<string, string>][] = [
      ["PATCH", `/admin/queues/api/queues/${name}/${failedJobId}/update-data`, {}],
      ["PATCH", `/admin/queues/api/queues/${name}/${failedJobId}/update-data/`, {}],
      ["PATCH", `/admin/queues/api/queues/${name}/${failedJobId}/update%2Ddata`, {}],
      ["PATCH", `/admin/queues/api/queues/${name}/${failedJobId}/%75pdate-data`, {}],
      [
        "POST",
        `/admin/queues/api/queues/${name}/${failedJobId}/update-data`,
        { "X-HTTP-Method-Override": "PATCH" },
      ],
      ["POST", `/admin/queues/api/queues/${name}/${failedJobId}/update-data?_method=PATCH`, {}],
      ["PUT", `/admin/queues/api/queues/${name}/${failedJobId}/update-data`, {}],
    ];
    for (const [method, path, extra] of attempts) {
      const res = await raw(method, path, { ...sameOrigin(), ...extra }, body);
      expect(res.status, `${method} ${path}`).not.toBe(200);
    }
    expect(JSON.stringify((await q.getJob(failedJobId))?.data)).toBe(before);
  });

  it("the viewer token cannot write through HEAD, OPTIONS or an override either", async () => {
    const q = stack.service.queues.events;
    const viewer = { ...sameOrigin(), Authorization: `Bearer ${stack.secrets.viewerToken}` };
    const pause = `/admin/queues/api/queues/${q.name}/pause`;
    for (const [method, extra] of [
      ["PUT", {}],
      ["HEAD", {}],
      ["GET", {}],
      ["OPTIONS", {}],
      ["POST", { "X-HTTP-Method-Override": "PUT" }],
    ] as const) {
      await raw(
        method,
        pause,
        { ...viewer, ...extra },
        method === "GET" || method === "HEAD" ? undefined : "{}",
      );
    }
    expect(await q.isPaused()).toBe(false);
    // The board's read API stays readable for the viewer (the defence is not "everything broken").
    expect((await raw("GET", "/admin/queues/api/queues", viewer)).status).toBe(200);
    // The one failed job is the planted one above.
    expect(await failures(stack)).toEqual([expect.stringContaining("JOB_DATA_INVALID")]);
  });
});
