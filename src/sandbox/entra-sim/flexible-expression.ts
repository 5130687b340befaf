/**
 * Flexible federated identity credentials (`claimsMatchingExpression`, Graph beta, preview), written from
 * Microsoft's documents only (MicrosoftDocs/entra-docs workload-identities-flexible-federated-identity-
 * credentials.md; reference/entra.md §2):
 *
 *   claims['<claim>'] <op> '<comparand>'     op: `matches` (`?` one character, `*` any run) or `eq` (exact)
 *   clauses joined by `and`; there is no `or`; single spaces; the comparand in single quotes.
 *
 * Parsed with a small scanner (not a regular expression over the whole text) so that anything outside the
 * documented grammar is refused when the credential is written, as Graph refuses it.
 */

export interface FlexibleClause {
  claim: string;
  operator: "matches" | "eq";
  comparand: string;
}

class Scanner {
  private at = 0;
  private readonly text: string;
  constructor(text: string) {
    this.text = text;
  }

  done(): boolean {
    return this.at >= this.text.length;
  }
  /** Consumes `literal` exactly, or fails. */
  expect(literal: string): boolean {
    if (!this.text.startsWith(literal, this.at)) return false;
    this.at += literal.length;
    return true;
  }
  /** A single-quoted string with no quote inside (the documents show no escape). */
  quoted(): string | null {
    if (!this.expect("'")) return null;
    const end = this.text.indexOf("'", this.at);
    if (end < 0) return null;
    const value = this.text.slice(this.at, end);
    this.at = end + 1;
    return value;
  }
  word(): string | null {
    const start = this.at;
    while (this.at < this.text.length && /[a-z]/.test(this.text[this.at] as string)) this.at++;
    return this.at > start ? this.text.slice(start, this.at) : null;
  }
}

/** The clauses of a documented expression, or null when the text is outside the documented grammar. */
export function parseFlexibleExpression(text: string): FlexibleClause[] | null {
  const s = new Scanner(text);
  const clauses: FlexibleClause[] = [];
  for (;;) {
    if (!s.expect("claims[")) return null;
    const claim = s.quoted();
    if (!claim || !s.expect("] ")) return null;
    const operator = s.word();
    if (operator !== "matches" && operator !== "eq") return null;
    if (!s.expect(" ")) return null;
    const comparand = s.quoted();
    if (comparand === null) return null;
    clauses.push({ claim, operator, comparand });
    if (s.done()) return clauses;
    if (!s.expect(" and ")) return null;
  }
}

/** `matches`: `*` any run of characters (also none), `?` exactly one; all else literal, case-sensitive. */
export function wildcardMatch(pattern: string, text: string): boolean {
  // Iterative matching with one backtrack point for the last `*` seen (linear in practice, no regex).
  let p = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    const c = pattern[p];
    if (c === "?" || (c !== undefined && c !== "*" && c === text[t])) {
      p++;
      t++;
    } else if (c === "*") {
      star = p++;
      resume = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (pattern[p] === "*") p++;
  return p === pattern.length;
}

/** True when every clause holds for the token's claims (a claim that is not a string never matches). */
export function flexibleExpressionHolds(clauses: readonly FlexibleClause[], claims: Record<string, unknown>) {
  return clauses.every((clause) => {
    const value = claims[clause.claim];
    if (typeof value !== "string") return false;
    return clause.operator === "eq" ? value === clause.comparand : wildcardMatch(clause.comparand, value);
  });
}
