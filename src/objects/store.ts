import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { ObjectSettings } from '../config/index.js';
import { manifestPath, readManifest, RESERVED_NAMES, withVaultLock, writeManifest, type Manifest } from '../dbcrypt/index.js';
import { AppError, checkInt, ErrorCode, invalidInput, optionsObject, shown, type OptionNames } from '../errors/index.js';
import { hasUnsafeChars } from '../log/index.js';
import {
  blobCandidates,
  blobPath,
  checkLimit,
  checkText,
  ensurePrivateDir,
  fileError,
  isOwnDir,
  isPlainFile,
  listDir,
  makeDir,
  holdOwner,
  OBJECT_REF,
  OBJECT_REF_CHARS,
  TMP_DIR,
  tempName,
  trashPath,
  type HeldOwner,
  type ObjectRow,
  type ObjectRows,
  type Scrubber,
} from '../storage/index.js';
import type { Vault } from '../vault/index.js';
import { DEFAULT_CHUNK_LOG2, storeKeys } from './chunks.js';
import { nativeSealerStatus } from './native.js';
import { claimObjectDir, notADirectory } from './claim.js';
import { collectGarbage, type GcReport } from './gc.js';
import { corrupt, openBlob, type OpenedBlob } from './read.js';
import { holdSource, releaseSource, type ObjectSource } from './source.js';
import { verifyStore, type VerifyReport } from './verify.js';
import { unlinkQuietly } from './unlink.js';
import { writeBlob } from './write.js';

/** The label of the store's key under the vault's master key (Vault.subkey). */
export const OBJECTS_KEY_LABEL = 'blufio/objects/v1';

const PUT_OPTIONS: OptionNames<PutOptions> = { contentType: true, name: true, maxBytes: true };

export interface PutOptions {
  /** A MIME type; default application/octet-stream. */
  contentType?: string;
  /** The file name it came with, for people (not a path; not unique). */
  name?: string | null;
  /** A smaller limit than [objects] max_object_bytes for this put. */
  maxBytes?: number;
}

export interface ObjectInfo {
  /** `obj_<ULID>`: put it in message metadata to attach the object. */
  ref: string;
  size: number;
  contentType: string;
  name: string | null;
  encrypted: boolean;
  createdAt: number;
  /** Messages whose metadata references it. */
  references: number;
}

export interface PutResult extends ObjectInfo {
  /** The same content was already stored: this put added a reference, not a file. */
  deduplicated: boolean;
}

export interface ObjectStats {
  dir: string;
  encryption: boolean;
  objects: number;
  /** Distinct contents stored (one file each). */
  files: number;
  encryptedFiles: number;
  logicalBytes: number;
  storedBytes: number;
  unreferenced: number;
  /** Puts in progress, or left by a process that died (gc removes those). */
  tempFiles: number;
  limits: { maxObjectBytes: number; maxTotalBytes: number; gcGraceMs: number };
  /**
   * What encrypts this process's puts: the native sealer built at install, or node:crypto (the
   * same files, more CPU) with the reason the native one is not in use.
   */
  sealer: { native: boolean; reason?: string };
}

export interface ObjectStoreDeps {
  rows: ObjectRows;
  /** The vault directory: vault.json's home. */
  vaultDir: string;
  settings: ObjectSettings;
  vault: Vault;
  log: Logger;
  scrub: Scrubber;
  lockTimeoutMs: number;
  /** Where owners' lock files are (the database's: see ownersDir). */
  ownersDir: string;
  /** Tests: a smaller chunk for encrypted objects. */
  chunkLog2?: number;
}

/** type/subtype, and parameters in printable ASCII after `;` (no line breaks: it may end up in an HTTP header). */
const CONTENT_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}([ \t]*;[\x20-\x7e]*)?$/;

function info(r: ObjectRow): ObjectInfo {
  return { ref: r.id, size: r.size, contentType: r.content_type, name: r.name, encrypted: r.encrypted === 1, createdAt: r.created_at, references: r.refs };
}

function lockedMeanwhile(): AppError {
  return new AppError(ErrorCode.VAULT_LOCKED, 'the vault was locked while the object was being opened', { hint: 'unlock it and try again' });
}

function checkRef(ref: unknown): string {
  if (typeof ref !== 'string' || !OBJECT_REF.test(ref)) {
    throw invalidInput(`${typeof ref === 'string' ? shown(ref, OBJECT_REF_CHARS + 2) : typeof ref} is not an object reference`, 'pass the ref that put() returned: obj_ and 26 letters and digits');
  }
  return ref;
}

/** How long a sum of the stored bytes serves puts' room before it is taken again. */
const STORED_TTL_MS = 10_000;

/** Whether something other than a directory is at `dir` (followed: a link to a directory is one). */
function isFileHere(dir: string): boolean {
  try {
    return !fs.statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Attachments: content-addressed files under the vault directory's objects/, indexed in the
 * database. Puts stream (a file of any size passes through in small pieces), are written to a
 * temporary file, synced, and moved into place inside the transaction that records them; the
 * same content is stored once. With encryption on (vault.json's object_store block), new objects
 * are sealed in authenticated chunks under keys from the vault; old ones are read as they were
 * written.
 */
export class ObjectStore {
  /** Names this store's temporary files; held, so that a gc elsewhere sees them as a live put's. */
  private readonly held: HeldOwner;
  private readonly owner: string;
  /** Temporary files of puts running in this store: gc leaves them alone. */
  private readonly inFlight = new Set<string>();
  /** Puts in progress, and whether each encrypts (so holds keys from the vault). */
  private readonly puts = new Map<AbortController, boolean | undefined>();
  /** Open get() streams, and whether each decrypts. */
  private readonly readers = new Map<Readable, boolean>();
  private readonly running = new Set<Promise<unknown>>();
  private closed = false;
  /** Bumped by every vault lock: work that fetched a key before it must not use it after. */
  private lockEpoch = 0;
  private cached: { sig: string; manifest: Manifest } | undefined;
  /** The objects/ directory found to be this vault's (see claim): checked once, not on every put. */
  private claimed: string | undefined;
  /** What the stored files took when last summed, and this process's puts since (see storedBytes). */
  private stored: { bytes: number; at: number } | undefined;

  constructor(private readonly d: ObjectStoreDeps) {
    this.held = holdOwner(d.ownersDir);
    this.owner = this.held.token;
    // Locking the vault stops everything that holds a key derived from it: encrypting puts
    // fail (their temporary files removed), decrypting streams end in an error; their keys
    // are zeroed as they stop.
    d.vault.onLock(() =>
      this.stopAll(true, () => new AppError(ErrorCode.VAULT_LOCKED, 'the vault was locked while an encrypted object was being read or written', { hint: 'unlock it and start again' })),
    );
  }

  private stopAll(encryptedOnly: boolean, reason: () => AppError): void {
    if (encryptedOnly) this.lockEpoch++;
    for (const [abort, encrypted] of this.puts) if (encrypted !== false || !encryptedOnly) abort.abort(reason());
    for (const [stream, encrypted] of this.readers) if (encrypted || !encryptedOnly) stream.destroy(reason());
  }

  /** vault.json, read again only when the file changed (another process may toggle encryption). */
  private manifest(): Manifest {
    const file = manifestPath(this.d.vaultDir);
    let sig = '';
    try {
      const st = fs.statSync(file);
      sig = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      // readManifest says what is wrong.
    }
    if (this.cached?.sig === sig && sig !== '') return this.cached.manifest;
    const loaded = readManifest(this.d.vaultDir);
    if (loaded === undefined) {
      throw new AppError(ErrorCode.NOT_FOUND, `${file} is missing`, { hint: 'it is written when the database is first opened; open the app again' });
    }
    this.cached = { sig, manifest: loaded.manifest };
    return loaded.manifest;
  }

  /** The objects/ directory (vault.json's object_store.dir). */
  get dir(): string {
    return this.dirOf(this.manifest());
  }

  private dirOf(m: Manifest): string {
    const name = m.object_store.dir;
    const db = m.database_file;
    if (RESERVED_NAMES.includes(name) || name === db || name.startsWith(`${db}-`) || name.startsWith(`${db}.`) || name.startsWith('.')) {
      throw new AppError(ErrorCode.MANIFEST_INVALID, `vault.json names ${JSON.stringify(name)}, a file of the vault itself, as the object store's directory`, {
        hint: 'set object_store.dir in vault.json back to "objects"; nothing was changed',
      });
    }
    return path.join(this.d.vaultDir, name);
  }

  /**
   * What the stored files take, for a put's room: summed from the rows (a scan of every file's
   * row, on this thread) at most every STORED_TTL_MS or when `fresh`, and kept up to date with
   * this process's own puts between (deletes and gc forget it). Another process's puts are
   * seen at the next sum; the commit's check, in the writer, is the one that counts.
   */
  private storedBytes(fresh = false): number {
    const now = Date.now();
    if (fresh || this.stored === undefined || now - this.stored.at > STORED_TTL_MS) this.stored = { bytes: this.d.rows.storedBytes(), at: now };
    return this.stored.bytes;
  }

  /**
   * Makes sure `dir` is this vault's object store, not one another vault (or a copy of this one)
   * shares, before anything is written or removed there; `again` looks afresh (gc, before it
   * deletes). A refusal is a safety violation: logged at ERROR, and nothing was changed.
   */
  private claim(dir: string, again = false): void {
    if (!again && this.claimed === dir) return;
    try {
      if (claimObjectDir({ dir, vaultId: this.manifest().vault_id, vaultDir: this.d.vaultDir, log: this.d.log })) this.claimed = dir;
    } catch (err) {
      this.claimed = undefined;
      // A store that may be another's is a safety refusal; a file in its place is only an error, said once.
      if (err instanceof AppError && err.code === ErrorCode.DB_STATE_MISMATCH) this.d.log.error({ err, dir }, 'refusing to write to an object store that is not this vault\'s own');
      throw fileError(`checking that ${dir} is this vault's`, err);
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.running.add(p);
    const done = (): void => void this.running.delete(p);
    p.then(done, done);
    return p;
  }

  private assertOpen(): void {
    if (this.closed) throw new AppError(ErrorCode.DB_CLOSED, 'the app is closed');
  }

  private async fileKey(): Promise<{ address: Buffer; file: Buffer }> {
    const root = await this.d.vault.subkey(OBJECTS_KEY_LABEL);
    try {
      return storeKeys(root);
    } finally {
      root.fill(0);
    }
  }

  /**
   * Stores the content of `source` and returns its reference. The source is read to its end; if
   * the put fails, the source is destroyed (a file stream's descriptor closed).
   */
  put(source: ObjectSource, opts?: PutOptions): Promise<PutResult> {
    const letGo = holdSource(source);
    return this.track(
      Promise.resolve()
        .then(() => this.doPut(source, optionsObject(opts, 'the options of put()', PUT_OPTIONS)))
        .catch((err: unknown) => {
          releaseSource(source);
          throw err;
        })
        .finally(letGo),
    );
  }

  private async doPut(source: ObjectSource, opts: PutOptions): Promise<PutResult> {
    this.assertOpen();
    // Before anything is read: a locked or closed database refuses now, not after the upload.
    this.d.rows.assertOpen();
    // Known to close() and lock() from the start (whether it encrypts is known later).
    const abort = new AbortController();
    this.puts.set(abort, undefined);
    try {
      return await this.putStarted(source, opts, abort);
    } finally {
      this.puts.delete(abort);
    }
  }

  private async putStarted(source: ObjectSource, opts: PutOptions, abort: AbortController): Promise<PutResult> {
    const contentType = checkText(opts.contentType ?? 'application/octet-stream', 'contentType', 512);
    if (!CONTENT_TYPE.test(contentType)) throw invalidInput(`contentType ${shown(contentType)} is not a MIME type`, 'use a type/subtype such as image/png');
    let name: string | null = null;
    if (opts.name !== undefined && opts.name !== null) {
      name = checkText(opts.name, 'name', 1024);
      // hasUnsafeChars lets tabs and newlines through (printable() escapes those); a name takes neither.
      if (hasUnsafeChars(name) || /[\t\n]/.test(name)) {
        throw invalidInput('name must not contain control characters (tabs and newlines included), bidirectional overrides or line separators', 'a file name is shown to people: pass it as it would be displayed');
      }
    }
    const limit = this.d.settings.maxObjectBytes;
    const own = opts.maxBytes === undefined ? undefined : checkLimit(opts.maxBytes, 'maxBytes', limit, Number.MAX_SAFE_INTEGER);
    const maxBytes = own === undefined || own >= limit ? limit : own;
    const limitName = maxBytes === limit ? '[objects] max_object_bytes' : 'the maxBytes of this put';
    let m = this.manifest();
    const dir = this.dirOf(m);
    try {
      ensurePrivateDir(dir);
    } catch (err) {
      // Its hint (point BLUFIO_DATA_DIR elsewhere) is for the data directory, not for objects/.
      if (isFileHere(dir)) throw notADirectory(dir);
      throw err;
    }
    this.claim(dir);
    makeDir(path.join(dir, TMP_DIR));
    if (!m.object_store.enabled) m = await this.updateStoreBlock((s) => ({ ...s, enabled: true }));
    const epoch = this.lockEpoch;
    const keys = m.object_store.encryption.enabled ? await this.fileKey() : undefined;
    this.puts.set(abort, keys !== undefined);
    if (abort.signal.aborted || (keys !== undefined && epoch !== this.lockEpoch)) {
      keys?.address.fill(0);
      keys?.file.fill(0);
      throw abort.signal.aborted ? abort.signal.reason : lockedMeanwhile();
    }
    const tmp = path.join(dir, TMP_DIR, tempName(this.owner, randomBytes(6).toString('hex')));
    this.inFlight.add(tmp);
    // The room left under max_total_bytes: a put past it stops writing at once (it wrote the
    // whole object before the commit refused it). The commit checks again with what others
    // stored meanwhile.
    const maxTotal = this.d.settings.maxTotalBytes;
    const room = maxTotal > 0 ? { bytes: Math.max(0, maxTotal - this.storedBytes()), refresh: () => Math.max(0, maxTotal - this.storedBytes(true)) } : undefined;
    try {
      const w = await writeBlob(source, tmp, {
        maxBytes,
        limitName,
        ...(room === undefined ? {} : { room }),
        signal: abort.signal,
        chunkLog2: this.d.chunkLog2 ?? DEFAULT_CHUNK_LOG2,
        ...(keys === undefined ? {} : { keys }),
      });
      // What is returned is what was stored: scrubbed of secrets.
      const storedType = this.d.scrub.text(contentType);
      const storedName = name === null ? null : this.d.scrub.text(name);
      const r = await this.d.rows.commit({
        dir,
        tmp: w.dropped ? null : tmp,
        address: w.address,
        encrypted: w.encrypted,
        size: w.size,
        storedSize: w.storedSize,
        contentType: storedType,
        name: storedName,
        maxTotalBytes: this.d.settings.maxTotalBytes,
      });
      if (!r.deduplicated && this.stored !== undefined) this.stored.bytes += w.storedSize;
      return { ref: r.id, size: w.size, contentType: storedType, name: storedName, encrypted: w.encrypted, createdAt: r.createdAt, references: 0, deduplicated: r.deduplicated };
    } finally {
      keys?.address.fill(0);
      keys?.file.fill(0);
      // Gone already when it was moved into place; otherwise this put failed and leaves nothing
      // (if even that fails, gc removes it once this process is gone).
      await unlinkQuietly(tmp).catch((err: unknown) => this.d.log.warn({ err, file: tmp }, 'cannot remove a temporary object file'));
      this.inFlight.delete(tmp);
    }
  }

  private row(ref: string): ObjectRow {
    const r = this.d.rows.get(checkRef(ref));
    if (r === undefined) throw new AppError(ErrorCode.NOT_FOUND, `no object ${ref}`, { hint: 'it was never stored here, or it was deleted (or removed by gc while nothing referenced it)' });
    return r;
  }

  async stat(ref: string): Promise<ObjectInfo> {
    this.assertOpen();
    return info(this.row(ref));
  }

  /** Objects in the order they were stored, `limit` at a time (default 100, at most 1000) after the ref `after`. */
  async list(given?: { limit?: number; after?: string }): Promise<ObjectInfo[]> {
    this.assertOpen();
    const opts = optionsObject(given, 'the options of list()', { limit: true, after: true });
    const limit = checkLimit(opts.limit, 'limit', 100, 1000);
    return this.d.rows.list(limit, opts.after === undefined ? undefined : checkRef(opts.after)).map(info);
  }

  /**
   * The object's content as a stream. An encrypted object's chunks are each authenticated
   * before they are passed on; its header, length and last chunk before the first byte. A
   * plain object is hashed as it is read and the stream fails at its end if the hash differs.
   * Either way a damaged object ends in an error (KC_OBJECT_CORRUPT), never silently.
   */
  async get(ref: string): Promise<Readable> {
    this.assertOpen();
    const r = this.row(ref);
    const dir = this.dir;
    const epoch = this.lockEpoch;
    const keys = r.encrypted === 1 ? await this.fileKey() : undefined;
    keys?.address.fill(0);
    let opened: OpenedBlob;
    try {
      opened = await this.openFile(dir, r, keys?.file);
    } catch (err) {
      if (err instanceof AppError && err.code === ErrorCode.OBJECT_CORRUPT) this.d.log.error({ ref, err }, 'an object failed its check');
      throw err;
    } finally {
      keys?.file.fill(0);
    }
    // A lock or close while the file was being opened: not a stream that outlives them.
    if (this.closed || (r.encrypted === 1 && epoch !== this.lockEpoch)) {
      await opened.close();
      throw this.closed ? new AppError(ErrorCode.DB_CLOSED, 'the app was closed') : lockedMeanwhile();
    }
    const log = this.d.log;
    async function* checked(): AsyncGenerator<Buffer> {
      try {
        yield* opened.content;
      } catch (err) {
        if (err instanceof AppError && err.code === ErrorCode.OBJECT_CORRUPT) log.error({ ref, err }, 'an object failed its check');
        // A failed read says so with a code, so a caller copying the stream blames the store, not its output.
        throw fileError(`reading object ${ref}`, err);
      }
    }
    const stream = Readable.from(checked(), { objectMode: false, highWaterMark: 256 * 1024 });
    // A stream held unread, or .pipe()d (which forwards no errors), must not turn a lock(),
    // a close() or a damaged file into an uncaught 'error' that ends the process: whoever
    // reads it (for await, pipeline) still gets the error; damage is logged above.
    stream.on('error', () => {});
    this.readers.set(stream, r.encrypted === 1);
    stream.once('close', () => {
      this.readers.delete(stream);
      opened.close().catch(() => {});
    });
    return stream;
  }

  private async openFile(dir: string, r: ObjectRow, fileKey: Buffer | undefined): Promise<OpenedBlob> {
    const blob = { address: r.address, encrypted: r.encrypted === 1, size: r.size, storedSize: r.stored_size };
    const what = `object ${r.id}`;
    try {
      // The candidates themselves may fail (objects/ a file: ENOTDIR), not only the opens.
      for (const file of blobCandidates(dir, r.address)) {
        try {
          return await openBlob(file, blob, what, fileKey);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
    } catch (err) {
      throw fileError(`reading ${what}`, err);
    }
    // Deleted between reading its row and opening its file, or lost.
    if (this.d.rows.get(r.id) === undefined) throw new AppError(ErrorCode.NOT_FOUND, `no object ${r.id}`, { hint: 'it was deleted' });
    throw corrupt(what, `its file ${blobPath(dir, r.address)} is missing`);
  }

  /**
   * Removes the object; its file goes when no other object has the same content. An object a
   * message, a live job or a session references is refused (KC_OBJECT_REFERENCED) unless
   * `force`, after which those references point at nothing.
   */
  async delete(ref: string, given?: { force?: boolean }): Promise<{ freedBytes: number }> {
    this.assertOpen();
    const opts = optionsObject(given, 'the options of delete()', { force: true });
    this.d.rows.assertOpen();
    const dir = this.dir;
    this.claim(dir);
    const r = await this.d.rows.delete({ dir, id: checkRef(ref), force: opts.force === true });
    this.stored = undefined;
    // Deleted, committed: a file that will not go now is left to gc, not reported as a failure.
    await Promise.all(r.trash.map((n) => unlinkQuietly(trashPath(dir, n)).catch((err: unknown) => this.d.log.warn({ err, file: n }, 'cannot remove a file from the object trash'))));
    return { freedBytes: r.bytes };
  }

  async stats(): Promise<ObjectStats> {
    this.assertOpen();
    this.d.rows.assertOpen();
    const m = this.manifest();
    const dir = this.dirOf(m);
    const c = this.d.rows.counts();
    // Not followed when it is not the store's own directory (a symlink elsewhere counts nothing).
    const tmpDir = path.join(dir, TMP_DIR);
    const tempFiles = isOwnDir(tmpDir) ? listDir(tmpDir).filter((n) => isPlainFile(path.join(tmpDir, n))).length : 0;
    const s = this.d.settings;
    return {
      dir,
      encryption: m.object_store.encryption.enabled,
      objects: c.objects,
      files: c.blobs,
      encryptedFiles: c.encryptedBlobs,
      logicalBytes: c.logicalBytes,
      storedBytes: c.storedBytes,
      unreferenced: c.unreferenced,
      tempFiles,
      limits: { maxObjectBytes: s.maxObjectBytes, maxTotalBytes: s.maxTotalBytes, gcGraceMs: s.gcGraceMs },
      sealer: nativeSealerStatus(),
    };
  }

  /**
   * Removes objects nothing references once older than `graceMs` (default [objects]
   * gc_grace_ms), files no row records, and temporary files of puts whose process died. Puts
   * running anywhere, and every object a message, a live job or a session names, are kept.
   */
  async gc(given?: { graceMs?: number }): Promise<GcReport> {
    this.assertOpen();
    const opts = optionsObject(given, 'the options of gc()', { graceMs: true });
    this.d.rows.assertOpen();
    const grace = checkInt(opts.graceMs, 'graceMs', 0, 100 * 365 * 86_400_000, this.d.settings.gcGraceMs, ' ms');
    const dir = this.dir;
    this.stored = undefined;
    return this.track(
      collectGarbage({
        rows: this.d.rows,
        dir,
        cutoff: Date.now() - grace,
        owner: this.owner,
        ownersDir: this.d.ownersDir,
        inFlight: this.inFlight,
        log: this.d.log,
        claim: () => this.claim(dir, true),
      }).catch((err: unknown) => {
        throw fileError(`collecting garbage in ${dir}`, err);
      }),
    );
  }

  /** Reads every stored file back and checks it (hash, or every chunk's authentication); lists what is wrong. */
  async verify(): Promise<VerifyReport> {
    this.assertOpen();
    this.d.rows.assertOpen();
    const dir = this.dir;
    return this.track(
      (async () => {
        const encrypted = this.d.rows.counts().encryptedBlobs > 0;
        // Taken before the key is derived, as put and get do: a lock during the derivation
        // stops this verify too (taken after it, such a lock went unseen and the whole store
        // was decrypted with the key it should have dropped).
        const epoch = this.lockEpoch;
        let keys: { address: Buffer; file: Buffer } | undefined;
        try {
          keys = encrypted ? await this.fileKey() : undefined;
        } catch (err) {
          // Without the vault the plain files are still checked; the report says what was not.
          if (!(err instanceof AppError && err.code === ErrorCode.VAULT_LOCKED)) throw err;
        }
        keys?.address.fill(0);
        try {
          return await verifyStore({
            rows: this.d.rows,
            dir,
            inFlight: this.inFlight,
            ...(keys === undefined ? {} : { fileKey: keys.file }),
            log: this.d.log,
            // Checked before each file and between chunks: a lock or close stops it (and the key is zeroed below).
            stopped: () => (this.closed ? new AppError(ErrorCode.DB_CLOSED, 'the app was closed') : keys !== undefined && epoch !== this.lockEpoch ? lockedMeanwhile() : undefined),
          });
        } catch (err) {
          throw fileError(`verifying ${dir}`, err);
        } finally {
          keys?.file.fill(0);
        }
      })(),
    );
  }

  /** Whether new objects are encrypted (vault.json object_store.encryption.enabled). */
  encryption(): boolean {
    return this.manifest().object_store.encryption.enabled;
  }

  /**
   * Turns encryption of new objects on or off, in vault.json; objects already stored stay as
   * they are and keep opening. Turning it on needs the vault (created now if there is none).
   */
  async setEncryption(enabled: boolean): Promise<{ enabled: boolean; changed: boolean }> {
    this.assertOpen();
    this.d.rows.assertOpen();
    if (typeof enabled !== 'boolean') throw invalidInput('setEncryption takes true or false');
    const before = this.manifest().object_store.encryption.enabled;
    if (!enabled && !before) return { enabled, changed: false };
    // Either way it needs the vault: turning encryption off is a downgrade, not for whoever
    // merely holds a locked app. (With no vault at all nothing encrypted can be read anyway.)
    if (enabled || (await this.d.vault.status()).exists) (await this.d.vault.subkey(OBJECTS_KEY_LABEL, { create: enabled })).fill(0);
    await this.updateStoreBlock((s) => ({ ...s, enabled: true, encryption: { ...s.encryption, enabled } }));
    if (before !== enabled) this.d.log.info({ encryption: enabled }, 'object store encryption changed; it applies to new objects');
    return { enabled, changed: before !== enabled };
  }

  private async updateStoreBlock(change: (s: Manifest['object_store']) => Manifest['object_store']): Promise<Manifest> {
    return withVaultLock(this.d.vaultDir, this.d.lockTimeoutMs, () => {
      const loaded = readManifest(this.d.vaultDir);
      if (loaded === undefined) throw new AppError(ErrorCode.NOT_FOUND, `${manifestPath(this.d.vaultDir)} is missing`);
      const next = { ...loaded.manifest, object_store: change(loaded.manifest.object_store) };
      writeManifest(this.d.vaultDir, next);
      this.cached = undefined;
      return next;
    });
  }

  /** Stops puts in progress (their temporary files are removed) and open get() streams, and waits for running work. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopAll(false, () => new AppError(ErrorCode.DB_CLOSED, 'the app was closed while an object was being read or written'));
    await Promise.allSettled([...this.running]);
    this.held.release();
  }
}
