import type { z } from "zod";

/** One configuration problem, phrased for the operator: what, what was wrong, a good value. */
export interface ConfigProblem {
  name: string;
  problem: string;
  example?: string;
}

/** Raised at start-up for bad environment or policy; main prints each problem and exits 2. */
export class ConfigError extends Error {
  readonly code = "CONFIG_INVALID";
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super(problems.map(formatProblem).join("\n"));
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.name}: ${p.problem}${p.example ? ` (example: ${p.example})` : ""}`;
}

export function problemsFromZod(
  error: z.ZodError,
  prefix: string,
  example?: string,
  examples: Record<string, string> = {},
): ConfigProblem[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join(".");
    const name = prefix && path ? `${prefix}: ${path}` : prefix || path;
    const ex = examples[path] ?? example;
    return { name, problem: issue.message, ...(ex ? { example: ex } : {}) };
  });
}
