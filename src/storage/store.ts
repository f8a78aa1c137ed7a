import { NO_SCRUB, type Scrubber } from './scrub.js';
import type { Logger } from 'pino';
import type { BlufioConfig } from '../config/index.js';
import { AppError, ErrorCode, invalidInput, optionsObject } from '../errors/index.js';
import { checkText } from './validate.js';
import { ensureDatabaseFile, ensurePrivateDir, preflight, tightenModes } from './files.js';
import { noteDatabaseOpen } from './held-files.js';
import { holdOwner, ownersDir, removeStaleOwnerLocks, type HeldOwner } from './liveness.js';
import { runBackup, runCheck, type BackupReport, type CheckReport } from './maintenance/index.js';
import { Messages } from './messages.js';
import { Queue } from './queue/queue.js';
import { VaultRows } from './vault-rows.js';
import { ObjectRows } from './objects/rows.js';
import { Sessions } from './sessions.js';
import { openConnection, type Db } from './sqlite.js';
import { toAppError } from './sqlite-errors.js';
import { WriterClient } from './writer/client.js';
import type { CheckpointResult, ReadyInfo } from './writer/protocol.js';

export interface StorageOpenOptions {
  /** Runs over every text before it is written (the app passes its redactor). */
  scrub?: Scrubber;
  /** The SQLCipher key literal of an encrypted database (dbcrypt decides and derives it). */
  cipherKey?: string;
}

/** Longest path Linux takes (PATH_MAX), in bytes. */
const PATH_MAX_BYTES = 4096;

export interface BackupOptions {
  /** Replace an existing file at the destination (atomically). */
  force?: boolean;
}

/**
 * One database file, opened the way every part expects: directories and files private, damage
 * detected before anything is written, migrations applied, sessions of crashed processes marked
 * interrupted; then one writer thread for all writes and one read connection on this thread.
 */
export class Storage {
  readonly sessions: Sessions;
  readonly messages: Messages;
  readonly queue: Queue;
  readonly vaultRows: VaultRows;
  readonly objectRows: ObjectRows;
  private closed = false;
  private readonly tasks = new Set<Promise<unknown>>();

  private constructor(
    private readonly config: BlufioConfig,
    private readonly reader: Db,
    private readonly writer: WriterClient,
    readonly openInfo: ReadyInfo,
    private readonly owner: HeldOwner,
    /** Tells held-files.ts when this process's connections to the file are closed. */
    private readonly heldFile: () => void,
    log: Logger,
    scrub: Scrubber,
    private readonly cipherKey: string | undefined,
  ) {
    this.sessions = new Sessions(reader, writer, scrub);
    this.messages = new Messages(reader, writer, config.storage.maxMessageBytes, scrub);
    this.queue = new Queue(reader, writer, config.queue, owner.token, ownersDir(config.databasePath), log, scrub);
    this.vaultRows = new VaultRows(reader, writer);
    this.objectRows = new ObjectRows(reader, writer);
  }

  static async open(config: BlufioConfig, log: Logger, opts: StorageOpenOptions = {}): Promise<Storage> {
    const scrub = opts.scrub ?? NO_SCRUB;
    const key = opts.cipherKey === undefined ? {} : { cipherKey: opts.cipherKey };
    const file = config.databasePath;
    const { exposed } = ensurePrivateDir(config.dataDir);
    if (exposed) {
      log.warn(
        { dir: config.dataDir },
        'the data directory can be listed by other users (the database files themselves are 0600); chmod 700 it if it is yours alone',
      );
    }
    preflight(file);
    ensureDatabaseFile(file);
    // Before the first connection: from then on this process holds SQLite locks on the file,
    // which a header read elsewhere in the process must not drop (see held-files.ts).
    const heldFile = noteDatabaseOpen(file);
    const owner = holdOwner(ownersDir(file));
    if (!owner.locked) {
      log.warn({ dir: ownersDir(file) }, 'cannot hold a lock file of this process beside the database; other processes judge whether it lives by its pid, which they cannot see from another pid namespace');
    }
    let client: WriterClient;
    let info: ReadyInfo;
    let reader: Db;
    try {
      ({ client, info } = await WriterClient.start(
        { databasePath: file, durability: config.storage.durability, lockTimeoutMs: config.storage.lockTimeoutMs, owner: owner.token, ...key },
        log,
      ));
    } catch (err) {
      owner.release();
      heldFile();
      throw err;
    }
    try {
      reader = openConnection(file, { durability: config.storage.durability, lockTimeoutMs: config.storage.lockTimeoutMs, queryOnly: true, ...key });
    } catch (err) {
      await client.close();
      owner.release();
      heldFile();
      throw err;
    }
    // Best effort, after this process's own sweep has judged their owners dead.
    const stale = removeStaleOwnerLocks(ownersDir(file));
    if (stale > 0) log.debug({ count: stale }, 'removed the lock files of owners that died');
    // SQLite created -wal/-shm with the database file's mode; make sure of it anyway.
    tightenModes(file);
    if (info.migrationsApplied.length > 0) log.info({ file, applied: info.migrationsApplied, version: info.schemaVersion }, 'database migrated');
    if (info.interruptedSessions > 0) {
      log.warn({ count: info.interruptedSessions }, 'sessions left active by a process that died were marked interrupted');
    }
    const { returned, dead } = info.recoveredJobs;
    if (returned + dead > 0) {
      log.warn({ returned, dead }, 'jobs leased by a process that died, or whose lease expired, were returned to the queue');
    }
    try {
      return new Storage(config, reader, client, info, owner, heldFile, log, scrub, opts.cipherKey);
    } catch (err) {
      // Statements are prepared here; nothing may stay open or locked when they fail.
      reader.close();
      await client.close().catch(() => undefined);
      owner.release();
      heldFile();
      throw toAppError(err, { file });
    }
  }

  private get keyArgs(): { cipherKey?: string } {
    return this.cipherKey === undefined ? {} : { cipherKey: this.cipherKey };
  }

  get databasePath(): string {
    return this.config.databasePath;
  }

  /** Starts a task only while open (a refused caller must find nothing done), and close() waits for it. */
  private track<T>(start: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new AppError(ErrorCode.DB_CLOSED, 'the database is closed'));
    const p = start();
    this.tasks.add(p);
    const done = (): void => void this.tasks.delete(p);
    p.then(done, done);
    return p;
  }

  /** integrity_check, foreign_key_check, schema version, sizes and counts (off the event loop). */
  async check(): Promise<CheckReport> {
    const { databasePath, storage } = this.config;
    const r = await this.track(() => runCheck({ databasePath, durability: storage.durability, lockTimeoutMs: storage.lockTimeoutMs, ...this.keyArgs }));
    return { ...r, writer: this.openInfo.pragmas };
  }

  /**
   * A consistent online copy at `dest`, checked, mode 0600, written atomically. `reservedDirs`:
   * directories besides the usual ones that a backup must not be written into (the object
   * store's, when vault.json names its own).
   */
  async backup(dest: string, opts?: BackupOptions, reservedDirs: string[] = []): Promise<BackupReport> {
    // Checked here: a value the worker cannot be sent (a symbol, a function) or fs cannot take
    // would otherwise fail as a DOMException, a TypeError or KC_INTERNAL.
    checkText(dest, 'the backup destination', PATH_MAX_BYTES);
    if (dest.includes('\0')) throw invalidInput('the backup destination must not contain a NUL character');
    const { force = false } = optionsObject(opts, 'the options of backup()', { force: true });
    if (typeof force !== 'boolean') throw invalidInput('force must be true or false');
    const { databasePath, storage } = this.config;
    return this.track(() =>
      runBackup({ databasePath, dest, force, durability: storage.durability, lockTimeoutMs: storage.lockTimeoutMs, reservedDirs, ...this.keyArgs }),
    );
  }

  /** Folds the WAL into the database file now, as far as other connections allow without waiting. */
  checkpoint(): Promise<CheckpointResult> {
    return this.writer.checkpoint();
  }

  /**
   * Stops queue workers (each hands back what it holds), waits for running tasks, lets the
   * writer finish every write already submitted, checkpoint (TRUNCATE) and close, then closes
   * the read connection and releases the file. After it, the database file alone is a complete
   * copy. The reader closes last because a write's promise may read after its commit (a claim
   * reads its payloads): closed first, a committed claim was reported as KC_DB_CLOSED.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.close();
    await Promise.allSettled([...this.tasks]);
    try {
      await this.writer.close();
    } finally {
      this.reader.close();
      this.heldFile();
      this.owner.release();
    }
  }
}
