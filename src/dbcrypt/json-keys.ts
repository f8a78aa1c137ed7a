/**
 * The first key that appears twice in one object of a JSON text, or undefined. JSON.parse keeps
 * the last of the two without a word, so `"state":"encrypted","state":"plaintext"` would be read
 * as plaintext while another reader (a strict one, or a person) sees encrypted: a manifest must
 * mean one thing. The text must already be valid JSON (JSON.parse accepted it). Keys compare
 * after unescaping: "a" and "\u0061" are the same key.
 */
export function firstDuplicateKey(text: string): string | undefined {
  // One entry per open container: the keys seen so far in an object, null for an array.
  const open: (Set<string> | null)[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b) open.push(new Set());
    else if (c === 0x5b) open.push(null);
    else if (c === 0x7d || c === 0x5d) open.pop();
    else if (c === 0x22) {
      let end = i + 1;
      while (text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c ? 2 : 1;
      const keys = open[open.length - 1];
      if (keys !== undefined && keys !== null) {
        let next = end + 1;
        while (next < text.length && ' \t\n\r'.includes(text[next]!)) next++;
        if (text[next] === ':') {
          const key = JSON.parse(text.slice(i, end + 1)) as string;
          if (keys.has(key)) return key;
          keys.add(key);
        }
      }
      i = end;
    }
  }
  return undefined;
}
