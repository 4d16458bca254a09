/**
 * Text as PostgreSQL can keep it: no NUL (U+0000), which text and jsonb refuse, and no
 * lone UTF-16 surrogate, which has no UTF-8 form; both become U+FFFD, as PostgreSQL itself
 * stores a lone surrogate sent as text. For text that does not come from a client's
 * argument (those are checked in the schema): a model's answer.
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
