/**
 * Group references in the policy: an Entra group object id (GUID), or a display-name template such as
 * `sg-{namespace}-{environment}` that the bot resolves through Graph. Templates let one rule serve every team
 * that follows a naming convention. Values come from project paths and environment names, so they are treated
 * as hostile: the rendered name is checked here, and escaped where it goes into an OData filter.
 */

export const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const PLACEHOLDERS = ["namespace", "top", "project", "environment"] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
export type TemplateValues = Record<Placeholder, string>;

/** Entra caps a group's displayName at 256 characters. */
export const MAX_GROUP_DISPLAY_NAME = 256;

const PLACEHOLDER_SET: ReadonlySet<string> = new Set(PLACEHOLDERS);
// Control characters never belong in a display name; an environment name is not trusted to lack them.
// biome-ignore lint/suspicious/noControlCharactersInRegex: that is exactly what it finds
const CONTROL = /[\u0000-\u001f\u007f]/;

export function isGroupId(ref: string): boolean {
  return GUID.test(ref);
}

type Part = { text: string } | { placeholder: Placeholder };

export interface ParsedTemplate {
  source: string;
  parts: Part[];
  placeholders: Placeholder[];
}

/** Parses a template; returns every problem found (unknown placeholder, stray brace, bad static text). */
export function parseTemplate(source: string): { template?: ParsedTemplate; problems: string[] } {
  const problems: string[] = [];
  const parts: Part[] = [];
  let i = 0;
  let text = "";
  while (i < source.length) {
    const ch = source[i] as string;
    if (ch === "{") {
      const close = source.indexOf("}", i + 1);
      if (close < 0) {
        problems.push(`"{" at position ${i + 1} is never closed`);
        break;
      }
      const name = source.slice(i + 1, close);
      if (!PLACEHOLDER_SET.has(name)) {
        problems.push(
          `unknown placeholder {${name}}: use ${PLACEHOLDERS.map((p) => `{${p}}`).join(", ")} (or a group object id)`,
        );
      } else {
        if (text) parts.push({ text });
        text = "";
        parts.push({ placeholder: name as Placeholder });
      }
      i = close + 1;
      continue;
    }
    if (ch === "}") problems.push(`"}" at position ${i + 1} has no opening "{"`);
    text += ch;
    i += 1;
  }
  if (text) parts.push({ text });
  const placeholders = [
    ...new Set(parts.flatMap((p) => ("placeholder" in p ? [p.placeholder] : []))),
  ] as Placeholder[];
  const staticText = parts.map((p) => ("text" in p ? p.text : "")).join("");
  if (source.trim() !== source) problems.push("must not start or end with whitespace");
  if (CONTROL.test(source)) problems.push("must not contain control characters");
  if (placeholders.length === 0 && staticText.trim() === "") problems.push("is empty");
  if (staticText.length > MAX_GROUP_DISPLAY_NAME) {
    problems.push(
      `its fixed text alone is ${staticText.length} characters; Entra group display names have at most ${MAX_GROUP_DISPLAY_NAME}`,
    );
  }
  return problems.length ? { problems } : { template: { source, parts, placeholders }, problems };
}

/**
 * Values of the placeholders for one project and environment. `{namespace}` is the namespace full path with
 * "/" replaced by "-", `{top}` the top-level group, `{project}` the project's own path segment.
 */
export function templateValues(projectPath: string, environment: string): TemplateValues {
  const segments = projectPath.split("/");
  const project = segments.at(-1) ?? projectPath;
  const namespace = segments.slice(0, -1);
  return {
    namespace: namespace.join("-"),
    top: namespace[0] ?? "",
    project,
    environment,
  };
}

export class TemplateRenderError extends Error {
  readonly template: string;
  readonly value: string;
  constructor(template: string, value: string, reason: string) {
    super(`group template "${template}" gives "${truncate(value)}", which ${reason}`);
    this.name = "TemplateRenderError";
    this.template = template;
    this.value = value;
  }
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Renders a parsed template; throws TemplateRenderError when the result cannot be a group's display name. */
export function renderTemplate(template: ParsedTemplate, values: TemplateValues): string {
  const out = template.parts.map((p) => ("text" in p ? p.text : values[p.placeholder])).join("");
  for (const p of template.placeholders) {
    if (values[p] === "") {
      throw new TemplateRenderError(template.source, out, `leaves {${p}} empty for this project path`);
    }
  }
  if (out.length > MAX_GROUP_DISPLAY_NAME) {
    throw new TemplateRenderError(template.source, out, `exceeds ${MAX_GROUP_DISPLAY_NAME} characters`);
  }
  if (CONTROL.test(out)) throw new TemplateRenderError(template.source, out, "contains control characters");
  if (out.trim() !== out || out === "")
    throw new TemplateRenderError(template.source, out, "is empty or has outer spaces");
  return out;
}

const parsedCache = new Map<string, ParsedTemplate>();

/** A valid template (validated when the policy loaded), parsed once. */
export function compiledTemplate(source: string): ParsedTemplate {
  let t = parsedCache.get(source);
  if (!t) {
    const parsed = parseTemplate(source);
    if (!parsed.template)
      throw new Error(`invalid group template "${source}": ${parsed.problems.join("; ")}`);
    t = parsed.template;
    parsedCache.set(source, t);
  }
  return t;
}

/** Renders a policy group reference: a GUID stays as is (lower-cased), a template gets the values. */
export function renderGroupRef(
  ref: string,
  values: TemplateValues,
): { kind: "id"; id: string } | { kind: "name"; template: string; displayName: string } {
  if (isGroupId(ref)) return { kind: "id", id: ref.toLowerCase() };
  return { kind: "name", template: ref, displayName: renderTemplate(compiledTemplate(ref), values) };
}

/** OData string literal: single quotes doubled (OData ABNF `SQUOTE-in-string`). */
export function odataString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}
