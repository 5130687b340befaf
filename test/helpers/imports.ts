import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { parseSync } from "oxc-parser";

/** One module reference in a source file: how it is written and where it points. */
export interface ModuleReference {
  file: string;
  specifier: string;
  kind:
    | "import"
    | "import type"
    | "export from"
    | "dynamic import"
    | "import type()"
    | "import = require"
    | "require";
  line: number;
}

type Node = { type?: string; start?: number; [key: string]: unknown };

const literal = (n: unknown): string | undefined => {
  const node = n as Node | undefined;
  return node && node.type === "Literal" && typeof node.value === "string" ? node.value : undefined;
};

/**
 * Every module reference in a TypeScript source, found by parsing it (oxc-parser), not by searching text:
 * static imports (value and type-only), re-exports, dynamic `import()`, `import("x").T` in types,
 * `import x = require()` and `require()` calls. A dynamic import whose argument is not a string literal is
 * reported with specifier "<computed>", so a check can refuse what it cannot see.
 */
export function moduleReferences(file: string, source: string): ModuleReference[] {
  const parsed = parseSync(file, source, { lang: "ts", sourceType: "module" });
  if (parsed.errors.length > 0) {
    throw new Error(`${file}: cannot parse: ${parsed.errors.map((e) => e.message).join("; ")}`);
  }
  const lineOf = (offset: number | undefined) => source.slice(0, offset ?? 0).split("\n").length;
  const out: ModuleReference[] = [];
  const add = (kind: ModuleReference["kind"], specifier: string | undefined, at: number | undefined) =>
    out.push({ file, kind, specifier: specifier ?? "<computed>", line: lineOf(at) });
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const v of value) walk(v);
      return;
    }
    if (!value || typeof value !== "object") return;
    const node = value as Node;
    switch (node.type) {
      case "ImportDeclaration":
        add(node.importKind === "type" ? "import type" : "import", literal(node.source), node.start);
        break;
      case "ExportAllDeclaration":
      case "ExportNamedDeclaration":
        if (node.source) add("export from", literal(node.source), node.start);
        break;
      case "ImportExpression":
        add("dynamic import", literal(node.source), node.start);
        break;
      case "TSImportType":
        add(
          "import type()",
          literal(node.source) ?? literal((node.argument as Node | undefined)?.literal),
          node.start,
        );
        break;
      case "TSExternalModuleReference":
        add("import = require", literal(node.expression), node.start);
        break;
      case "CallExpression": {
        const callee = node.callee as Node | undefined;
        if (callee?.type === "Identifier" && callee.name === "require") {
          add("require", literal((node.arguments as unknown[] | undefined)?.[0]), node.start);
        }
        break;
      }
    }
    for (const [key, child] of Object.entries(node)) {
      if (key !== "start" && key !== "end") walk(child);
    }
  };
  walk(parsed.program);
  return out;
}

/** All .ts files below `dir`. */
export function typeScriptFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/**
 * References from files under `root` that resolve into one of `forbidden` (directories, absolute), or that
 * cannot be resolved statically. Bare specifiers (packages, node:) are allowed.
 */
export function forbiddenReferences(
  files: string[],
  forbidden: string[],
  read = (f: string) => readFileSync(f, "utf8"),
) {
  const inside = (path: string, dir: string) => {
    const rel = relative(dir, path);
    return rel === "" || (!rel.startsWith("..") && !rel.startsWith(sep) && !/^[a-zA-Z]:/.test(rel));
  };
  const bad: Array<ModuleReference & { target: string }> = [];
  for (const file of files) {
    for (const ref of moduleReferences(file, read(file))) {
      if (ref.specifier === "<computed>") {
        bad.push({ ...ref, target: "(computed specifier: cannot be checked)" });
        continue;
      }
      if (
        !ref.specifier.startsWith(".") &&
        !ref.specifier.startsWith("/") &&
        !ref.specifier.startsWith("file:")
      )
        continue;
      const target = ref.specifier.startsWith("file:")
        ? new URL(ref.specifier).pathname
        : resolve(dirname(file), ref.specifier);
      const hit = forbidden.find((dir) => inside(target, dir));
      if (hit) bad.push({ ...ref, target });
    }
  }
  return bad;
}
