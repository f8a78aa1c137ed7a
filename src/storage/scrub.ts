/**
 * What the storage layer runs over text before it is written: message content, metadata,
 * queue payloads and error text. The app passes the redactor; alone, storage stores as given.
 */
export interface Scrubber {
  /** Plain text (message content, an error message). */
  text(s: string): string;
  /** JSON text; must stay valid JSON. */
  json(s: string): string;
}

export const NO_SCRUB: Scrubber = { text: (s) => s, json: (s) => s };
