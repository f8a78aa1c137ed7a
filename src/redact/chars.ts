/** Character classes the rules and the scan share, by char code (cheaper than a regex per character). */

export const isAlnum = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

/** The base64url alphabet: letters, digits, `_` and `-` (what tokens and JWT parts are made of). */
export const isBase64Url = (c: number): boolean => isAlnum(c) || c === 0x5f || c === 0x2d;
