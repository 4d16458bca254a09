/**
 * How the schema spells a wire value as a GraphQL enum name: `in_progress` is IN_PROGRESS.
 * Every enum built from domain values uses it, and so does anything else that shows such a
 * value to a GraphQL client (an error's `extensions.status`), so the two never differ.
 */
export const enumName = <V extends string>(value: V): Uppercase<V> => value.toUpperCase() as Uppercase<V>;
