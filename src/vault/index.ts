export { checkNewSecretName, checkSecretName, MAX_VALUE_BYTES, nameLooksLikeSecret, noSuchSecret, PASSPHRASE_PIN_CHARS, Vault } from './vault.js';
export type { PassphraseProvider, PassphrasePurpose, SecretListing, VaultStatus } from './vault.js';
export { Secret } from './secret.js';
export { maskSecret } from './mask.js';
export { DEFAULT_KDF, KDF_BOUNDS, deriveKey } from './kdf.js';
export type { KdfParams } from './kdf.js';
export { moveConfigSecrets } from './config-secrets.js';
export { gcmOpen } from './seal.js';
export { assertNewPassphrase, VAULT_KEY_ENV } from './new-passphrase.js';
