/** Random secrets for the redaction tests: every rule's documented format, with fresh bodies. */
import crypto from 'node:crypto';

/** n characters (code points, never half a surrogate pair) drawn from the alphabet. */
export const rand = (alphabet: string, n: number): string => {
  const chars = Array.from(alphabet);
  return Array.from({ length: n }, () => chars[crypto.randomInt(chars.length)]).join('');
};
export const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export const B64URL = `${ALNUM}_-`;
const HEX = '0123456789abcdef';
const UPPER_NUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Generators of each provider's documented key format, with fresh random bodies. */
export const FORMATS: Record<string, () => string> = {
  'anthropic-key': () => `sk-ant-api03-${rand(B64URL, 93)}AA`,
  'openrouter-key': () => `sk-or-v1-${rand(HEX, 64)}`,
  'openai-key': () => [`sk-proj-${rand(B64URL, 156)}`, `sk-svcacct-${rand(B64URL, 74)}`, `sk-${rand(ALNUM, 20)}T3BlbkFJ${rand(ALNUM, 20)}`, `sk-${rand(ALNUM, 48)}`][crypto.randomInt(4)]!,
  'github-token': () => [`ghp_${rand(ALNUM, 36)}`, `gho_${rand(ALNUM, 36)}`, `ghs_${rand(ALNUM, 36)}`, `github_pat_${rand(ALNUM, 22)}_${rand(ALNUM, 59)}`][crypto.randomInt(4)]!,
  'gitlab-token': () => `glpat-${rand(B64URL, 20)}`,
  'slack-token': () => [`xoxb-${rand('0123456789', 12)}-${rand('0123456789', 13)}-${rand(ALNUM, 24)}`, `xoxp-${rand('0123456789', 12)}-${rand('0123456789', 12)}-${rand('0123456789', 13)}-${rand(HEX, 32)}`, `xapp-1-A${rand(UPPER_NUM, 10)}-${rand('0123456789', 13)}-${rand(HEX, 64)}`][crypto.randomInt(3)]!,
  'stripe-key': () => [`sk_live_${rand(ALNUM, 24)}`, `rk_test_${rand(ALNUM, 99)}`, `whsec_${rand(ALNUM, 32)}`][crypto.randomInt(3)]!,
  'aws-access-key-id': () => `${['AKIA', 'ASIA'][crypto.randomInt(2)]}${rand('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 16)}`,
  'google-api-key': () => `AIza${rand(B64URL, 35)}`,
  jwt: () => `eyJ${rand(B64URL, 30)}.eyJ${rand(B64URL, 60)}.${rand(B64URL, 43)}`,
  'telegram-bot-token': () => `${crypto.randomInt(100000000, 9999999999)}:AA${rand(B64URL, 33)}`,
  'discord-bot-token': () => `${'MNO'[crypto.randomInt(3)]}${rand(B64URL, 25)}.${rand(B64URL, 6)}.${rand(B64URL, 38)}`,
  'private-key': () => {
    const kind = ['', 'RSA ', 'EC ', 'OPENSSH ', 'ENCRYPTED '][crypto.randomInt(5)];
    return `-----BEGIN ${kind}PRIVATE KEY-----\n${rand(`${ALNUM}+/`, 64)}\n${rand(`${ALNUM}+/`, 40)}=\n-----END ${kind}PRIVATE KEY-----`;
  },
};

