/** Who is asking: the project every lookup is confined to, and the key (for rate limits). */
export interface Caller {
  projectId: string;
  /** The API key's id (never the key), or "local" in open local mode. */
  keyId: string;
}
