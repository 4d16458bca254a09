/**
 * A value as a JSON parameter for PostgreSQL (`$1::jsonb`, jsonb_to_recordset). jsonb
 * refuses a lone UTF-16 surrogate (`"\ud800"`, which JSON.parse accepts from a client),
 * in a key as in a string, while the same string sent as a text parameter is stored with
 * U+FFFD in its place: this makes the JSON say the same, so a statement does not fail on
 * what a client may send.
 *
 * JSON.stringify writes a lone surrogate as an escape (`\udXXX`) and a well-formed pair as
 * itself, so every such escape in its output is one, wherever it stands: a key or a value.
 * (An escaped backslash before `ud800`, from a string that holds the six characters, is
 * told apart by counting the backslashes before it.)
 */
const ESCAPED_LONE_SURROGATE = /(?<!\\)((?:\\\\)*)\\ud[89a-f][0-9a-f]{2}/g;

export function jsonParam(value: unknown): string {
  const json = JSON.stringify(value);
  return json?.includes('\\ud') ? json.replace(ESCAPED_LONE_SURROGATE, '$1\ufffd') : json;
}
