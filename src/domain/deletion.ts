/**
 * What a delete answers: the Assistants API's deletion status objects (`assistant.deleted`,
 * `thread.deleted`, `thread.message.deleted`), the same for every face of the API.
 */
export type DeletedObject = 'assistant.deleted' | 'thread.deleted' | 'thread.message.deleted';

export interface Deletion<O extends DeletedObject = DeletedObject> {
  id: string;
  object: O;
  /** Always true: a delete that cannot be made fails with an error instead. */
  deleted: true;
}

export function deletion<O extends DeletedObject>(object: O, id: string): Deletion<O> {
  return { id, object, deleted: true };
}
