/**
 * Text as PostgreSQL can keep it: no NUL (U+0000), which text and jsonb refuse, and no
 * lone UTF-16 surrogate, which has no UTF-8 form; both become U+FFFD, as PostgreSQL itself
 * stores a lone surrogate sent as text. For text that does not come from a client (a
 * model's answer). A client's NUL is refused instead, where its request is checked: a
 * GraphQL argument (graphql/stored-text.ts), a REST body ({@link nulInJson}).
 */

/** ES2024's well-formed string methods (Node 20 has them; the project's lib is ES2023). */
type WellFormed = string & { isWellFormed(): boolean; toWellFormed(): string };

export function storableText(text: string): string {
  const whole = wellFormed(text);
  return whole.includes('\u0000') ? whole.replaceAll('\u0000', '\ufffd') : whole;
}

/** The text with each lone surrogate replaced by U+FFFD. */
export function wellFormed(text: string): string {
  return (text as WellFormed).isWellFormed() ? text : (text as WellFormed).toWellFormed();
}

/** Whether the text ends with the first half of a surrogate pair (its other half may follow). */
export function endsInHalfPair(text: string): boolean {
  const last = text.charCodeAt(text.length - 1);
  return last >= 0xd800 && last <= 0xdbff;
}

/** A value met while walking a JSON value, with where it sits (the path is built only when asked for). */
interface Visit {
  node: unknown;
  key: string | number | undefined;
  parent: Visit | undefined;
}

function pathOf(visit: Visit, last?: string): (string | number)[] {
  const path: (string | number)[] = last === undefined ? [] : [last];
  for (let v: Visit | undefined = visit; v?.key !== undefined; v = v.parent) path.unshift(v.key);
  return path;
}

/**
 * Where a JSON value holds a NUL, in a key or a string: the path to the first one found,
 * or undefined. No text or jsonb column keeps one, so a client's value with one is refused.
 * With `repair`, each lone surrogate in a string becomes U+FFFD on the way, in place (for a
 * value just parsed from a request, which nothing else holds). Walked without recursion, so
 * a value nested any depth cannot overflow the stack.
 */
export function nulInJson(value: unknown, repair = false): (string | number)[] | undefined {
  const pending: Visit[] = [{ node: value, key: undefined, parent: undefined }];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const { node } = next;
    if (typeof node === 'string') {
      if (node.includes('\u0000')) return pathOf(next);
    } else if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        if (repair && typeof node[i] === 'string') node[i] = wellFormed(node[i] as string);
        pending.push({ node: node[i], key: i, parent: next });
      }
    } else if (node !== null && typeof node === 'object') {
      const record = node as Record<string, unknown>;
      for (const key in record) {
        if (key.includes('\u0000')) return pathOf(next, key);
        if (repair && typeof record[key] === 'string') record[key] = wellFormed(record[key] as string);
        pending.push({ node: record[key], key, parent: next });
      }
    }
  }
  return undefined;
}
