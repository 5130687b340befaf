// autocannon ships no type definitions; this is the slice of its API the benchmarks use.
import autocannonUntyped from "autocannon";

export interface AutocannonRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface AutocannonOptions {
  url: string;
  connections?: number;
  duration?: number;
  amount?: number;
  overallRate?: number;
  pipelining?: number;
  requests?: Array<AutocannonRequest & { setupRequest?: (req: AutocannonRequest) => AutocannonRequest }>;
}

export interface Histogram {
  average: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface AutocannonResult {
  requests: Histogram & { total: number; sent: number };
  latency: Histogram;
  throughput: Histogram;
  errors: number;
  timeouts: number;
  non2xx: number;
  /** Seconds, to 10 ms. */
  duration: number;
  start: Date;
  finish: Date;
  "2xx": number;
}

// The package's default export is a callable taking options and a callback; typed here by hand.
const run = autocannonUntyped as unknown as (
  opts: AutocannonOptions,
  cb: (err: Error | null, result: AutocannonResult) => void,
) => unknown;

export function autocannon(opts: AutocannonOptions): Promise<AutocannonResult> {
  return new Promise((resolve, reject) => {
    run(opts, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

/**
 * Completed requests per second over the whole run. autocannon's requests.average is the mean of
 * one-second buckets, which for a fixed request count has whole-second resolution (50,000 requests in
 * 7 s or 8 s reads as 7,143 or 6,250 however long the last second really was).
 */
export function rate(r: AutocannonResult): number {
  const seconds = (r.finish.getTime() - r.start.getTime()) / 1000;
  return seconds > 0 ? r["2xx"] / seconds : 0;
}
