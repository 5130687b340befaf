import { z } from "zod";
import { GraphFailure, type GraphResponse } from "./envelope.ts";

/** JSON $batch (reference/entra.md §6): ≤20 requests, unique ids, dependsOn with 424 for dependents of failures. */

export const MAX_BATCH_REQUESTS = 20;

const itemSchema = z.object({
  id: z.string().min(1),
  method: z.string().min(1),
  url: z.string().min(1),
  headers: z.record(z.string(), z.string()).optional(),
  body: z.unknown().optional(),
  dependsOn: z.array(z.string()).optional(),
});
const batchSchema = z.object({ requests: z.array(itemSchema) });
export type BatchItem = z.infer<typeof itemSchema>;

export interface BatchItemResponse {
  id: string;
  status: number;
  headers: Record<string, string>;
  body?: unknown;
}

/** Validates the whole batch up front: any of these problems fails the batch itself with 400. */
export function parseBatch(body: unknown): BatchItem[] {
  const parsed = batchSchema.safeParse(body);
  if (!parsed.success) throw new GraphFailure(400, "BadRequest", "Invalid batch payload format.");
  const requests = parsed.data.requests;
  if (requests.length === 0)
    throw new GraphFailure(400, "BadRequest", "Batch request must contain at least one request.");
  if (requests.length > MAX_BATCH_REQUESTS) {
    throw new GraphFailure(
      400,
      "BadRequest",
      `Maximum number of requests in a batch exceeded. Max allowed number of requests is ${MAX_BATCH_REQUESTS}.`,
    );
  }
  const ids = new Set<string>();
  for (const r of requests) {
    if (ids.has(r.id))
      throw new GraphFailure(400, "BadRequest", `Batch request contains duplicate request id '${r.id}'.`);
    ids.add(r.id);
  }
  for (const r of requests) {
    const hasContentType = Object.keys(r.headers ?? {}).some((h) => h.toLowerCase() === "content-type");
    if (r.body !== undefined && !hasContentType) {
      throw new GraphFailure(
        400,
        "BadRequest",
        `Write request id : ${r.id} does not contain Content-Type header or body.`,
      );
    }
    for (const dep of r.dependsOn ?? []) {
      if (!ids.has(dep) || dep === r.id) {
        throw new GraphFailure(
          400,
          "BadRequest",
          `Request with id '${r.id}' depends on unknown request id '${dep}'.`,
        );
      }
    }
  }
  return requests;
}

/**
 * Runs items in dependency order (independent items in listed order). An item whose dependency did not succeed
 * gets 424 without running. A dependency cycle fails the batch.
 */
export async function runBatch(
  items: BatchItem[],
  execute: (item: BatchItem) => Promise<GraphResponse>,
): Promise<BatchItemResponse[]> {
  const done = new Map<string, BatchItemResponse>();
  const pending = [...items];
  while (pending.length > 0) {
    const index = pending.findIndex((item) => (item.dependsOn ?? []).every((d) => done.has(d)));
    const item = index >= 0 ? pending[index] : undefined;
    if (!item) throw new GraphFailure(400, "BadRequest", "Batch request contains a dependsOn cycle.");
    pending.splice(index, 1);
    const failedDependency = (item.dependsOn ?? []).some((d) => {
      const status = done.get(d)?.status ?? 0;
      return status < 200 || status >= 300;
    });
    if (failedDependency) {
      done.set(item.id, {
        id: item.id,
        status: 424,
        headers: { "Content-Type": "application/json" },
        body: { error: { code: "FailedDependency", message: "Dependent request failed." } },
      });
      continue;
    }
    const res = await execute(item);
    done.set(item.id, {
      id: item.id,
      status: res.status,
      headers: res.headers,
      ...(res.body !== undefined ? { body: res.body } : {}),
    });
  }
  return items.map((i) => done.get(i.id)).filter((r): r is BatchItemResponse => r !== undefined);
}
