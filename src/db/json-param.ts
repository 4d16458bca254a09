/**
 * A value as a JSON parameter for PostgreSQL (`$1::jsonb`, jsonb_to_recordset). jsonb
 * refuses a lone UTF-16 surrogate (`"\ud800"`, which JSON.parse accepts from a client),
 * while the same string sent as a text parameter is stored with U+FFFD in its place: this
 * makes the JSON say the same, so a statement does not fail on what a client may send.
 */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

const wellFormed = (_key: string, value: unknown) =>
  typeof value === 'string' && LONE_SURROGATE.test(value) ? value.replace(LONE_SURROGATES, '\ufffd') : value;

export function jsonParam(value: unknown): string {
  return JSON.stringify(value, wellFormed);
}
