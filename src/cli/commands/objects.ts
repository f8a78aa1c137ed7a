import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Command } from 'commander';
import { AppError, ErrorCode } from '../../errors/index.js';
import { fileError, fsErrorText } from '../../storage/index.js';
import type { GcReport, ObjectStats, VerifyReport } from '../../objects/index.js';
import { intBetween } from '../args.js';
import { withApp } from '../context.js';
import { formatBytes, formatDuration, printable, printJson, printLines } from '../output.js';

function describeStats(s: ObjectStats): string[] {
  const l = s.limits;
  return [
    `directory   ${printable(s.dir)}`,
    `encryption  ${s.encryption ? 'on (new objects are encrypted)' : 'off (new objects are stored as they are)'}`,
    `objects     ${s.objects} (${s.unreferenced} referenced by no message)`,
    `files       ${s.files} (${s.encryptedFiles} encrypted), ${formatBytes(s.storedBytes)} on disk for ${formatBytes(s.logicalBytes)} of objects`,
    `temporary   ${s.tempFiles} file(s) of puts in progress or abandoned`,
    `sealer      ${s.sealer.native ? 'native (built at install)' : `node:crypto, slower: the native sealer is ${printable(s.sealer.reason ?? 'not in use')}`}`,
    `limits      ${formatBytes(l.maxObjectBytes)} per object, ${l.maxTotalBytes === 0 ? 'no total limit' : `${formatBytes(l.maxTotalBytes)} in all`}, gc keeps unreferenced objects ${formatDuration(l.gcGraceMs)}`,
  ];
}

function describeGc(r: GcReport): string[] {
  return [`removed ${r.objectsRemoved} unreferenced object(s), ${r.filesRemoved} file(s) and ${r.tempFilesRemoved} abandoned temporary file(s); ${formatBytes(r.bytesFreed)} freed`];
}

function describeVerify(r: VerifyReport): string[] {
  return [
    `directory   ${printable(r.dir)}`,
    `status      ${r.ok ? 'ok' : 'DAMAGED'}${r.complete ? '' : ` (incomplete: the content of ${r.notChecked} encrypted file(s) was not checked, no vault key)`}`,
    `checked     ${r.filesOk} file(s) intact, ${formatBytes(r.bytesChecked)} read back`,
    ...r.problems.map((p) => `damaged     ${p.address} (${p.refs.join(', ') || 'no object'}): ${printable(p.problem)}`),
    ...(r.notChecked > 0
      ? [`not checked the content of ${r.notChecked} encrypted file(s): the vault is locked (each is there, of the size stored; give the passphrase to check the content)`]
      : []),
    ...(r.strayFiles > 0 ? [`stray       ${r.strayFiles} file(s) no object records (blufio objects gc removes them)`] : []),
    ...(r.tempFiles > 0 ? [`temporary   ${r.tempFiles} file(s) of puts in progress or abandoned`] : []),
    ...r.unknownFiles.map((f) => `unknown     ${printable(f)} (not written by blufio; left alone)`),
    ...r.unreadable.map((f) => `unreadable  ${printable(f)}: what is in it was not looked at (recorded files are read by their paths)`),
  ];
}

export function objectsCommand(): Command {
  const objects = new Command('objects').description('the attachment store: counts, garbage collection, verification, deletion, encryption');

  objects
    .command('stats')
    .description('how many objects and files, how many bytes, encryption and limits')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const s = await withApp(cmd, (app) => app.objects.stats());
      if (opts.json) printJson(s);
      else printLines(describeStats(s));
    });

  objects
    .command('gc')
    .description('remove objects no message, job or session references (older than [objects] gc_grace_ms), files no object records, and temporary files of dead puts')
    .option('--grace-ms <ms>', 'keep unreferenced objects younger than this instead', intBetween(0, 100 * 365 * 86_400_000))
    .option('--json', 'print JSON')
    .action(async (opts: { graceMs?: number; json?: boolean }, cmd: Command) => {
      const r = await withApp(cmd, (app) => app.objects.gc(opts.graceMs === undefined ? {} : { graceMs: opts.graceMs }));
      if (opts.json) printJson(r);
      else printLines(describeGc(r));
    });

  objects
    .command('verify')
    .description('read every stored file back and check it (SHA-256, or every encrypted chunk); exit status 1 when any is damaged or missing')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const r = await withApp(cmd, (app) => app.objects.verify());
      if (opts.json) printJson(r);
      else printLines(describeVerify(r));
      if (!r.ok) {
        throw new AppError(ErrorCode.OBJECT_CORRUPT, `${r.problems.length} stored file(s) in ${r.dir} are damaged or missing`, {
          hint: 'restore objects/ from a backup, or delete the objects listed: blufio objects delete <ref> (with --force for one that is still referenced)',
        });
      }
    });

  objects
    .command('delete')
    .description('remove an object (its file goes when no other object has the same content); exit status 1 when a message, a live job or a session references it, unless --force')
    .argument('<ref>', 'the object reference (obj_...)')
    .option('--force', 'delete it even when it is referenced (those references then point at nothing)')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { force?: boolean; json?: boolean }, cmd: Command) => {
      const r = await withApp(cmd, (app) => app.objects.delete(ref, { force: opts.force === true }));
      if (opts.json) printJson({ ref, ...r });
      else printLines([`deleted ${ref} (${formatBytes(r.freedBytes)} freed)`]);
    });

  objects
    .command('encryption')
    .description('turn encryption of new objects on or off (vault.json), or show it; stored objects stay as they are')
    .argument('[state]', 'on, off, or nothing to show it')
    .option('--json', 'print JSON')
    .action(async (state: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      if (state !== undefined && state !== 'on' && state !== 'off') {
        throw new AppError(ErrorCode.CLI_USAGE, `objects encryption takes on or off, not ${JSON.stringify(state)}`);
      }
      const r = await withApp(cmd, async (app) =>
        state === undefined ? { enabled: app.objects.encryption(), changed: false } : app.objects.setEncryption(state === 'on'),
      );
      if (opts.json) printJson(r);
      else printLines([`object encryption is ${r.enabled ? 'on' : 'off'}${r.changed ? ' (changed; it applies to new objects)' : ''}`]);
    });

  objects
    .command('put')
    .description('store a file (or stdin with -) as an object and print its reference')
    .argument('<file>', 'the file, or - for standard input')
    .option('--content-type <type>', 'its MIME type', 'application/octet-stream')
    .option('--name <name>', 'the name to record (default: the file name)')
    .option('--json', 'print JSON')
    .action(async (file: string, opts: { contentType: string; name?: string; json?: boolean }, cmd: Command) => {
      let fd: number | undefined;
      if (file !== '-') {
        try {
          // O_NONBLOCK: a FIFO given by mistake is refused below, not waited on.
          fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
        } catch (err) {
          throw new AppError(ErrorCode.NOT_FOUND, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { hint: 'check the path and its permissions' });
        }
        if (!fs.fstatSync(fd).isFile()) {
          fs.closeSync(fd);
          throw new AppError(ErrorCode.INVALID_INPUT, `${file} is not a regular file`, { hint: 'pass a file, or - and pipe the content in' });
        }
      }
      const r = await withApp(cmd, (app) =>
        app.objects.put(fd === undefined ? process.stdin : fs.createReadStream('', { fd }), {
          contentType: opts.contentType,
          name: opts.name ?? (file === '-' ? null : file.split(/[\\/]/).pop()!),
        }),
      );
      if (opts.json) printJson(r);
      else printLines([`${r.ref}  ${formatBytes(r.size)}${r.encrypted ? ', encrypted' : ''}${r.deduplicated ? ', same content as an object already stored' : ''}`]);
    });

  objects
    .command('get')
    .description("write an object's content to a file (or to stdout when it is not a terminal)")
    .argument('<ref>', 'the object reference (obj_...)')
    .option('-o, --out <file>', 'write here (created 0600; must not exist)')
    .action(async (ref: string, opts: { out?: string }, cmd: Command) => {
      if (opts.out === undefined && process.stdout.isTTY) {
        throw new AppError(ErrorCode.CLI_USAGE, 'refusing to write an object to a terminal', { hint: 'pass --out <file>, or redirect stdout' });
      }
      await withApp(cmd, async (app) => {
        // Created first (never over an existing file), so that only a file this command made is
        // removed on failure, and a refused destination leaves no stream open.
        let sink: NodeJS.WritableStream = process.stdout;
        if (opts.out !== undefined) {
          try {
            sink = fs.createWriteStream('', { fd: fs.openSync(opts.out, 'wx', 0o600) });
          } catch (err) {
            // The --out path is the caller's, not the database's: whatever is wrong with it is a
            // value refused before anything was done.
            const code = (err as NodeJS.ErrnoException).code;
            const isDir = code === 'EEXIST' && fs.lstatSync(opts.out, { throwIfNoEntry: false })?.isDirectory() === true;
            throw new AppError(
              ErrorCode.INVALID_INPUT,
              isDir ? `--out ${opts.out} is a directory; --out names the file to create` : `cannot create --out ${opts.out}: ${fsErrorText(err)}`,
              {
                hint: isDir
                  ? `name a file in it, e.g. ${path.join(opts.out, 'object.bin')}`
                  : code === 'EEXIST'
                    ? 'it exists; objects get never overwrites a file: choose another name'
                    : 'name a new file in a directory that exists and that you can write',
                cause: err,
              },
            );
          }
        }
        try {
          await pipeline(await app.objects.get(ref), sink, { end: opts.out !== undefined });
        } catch (err) {
          // The reader of stdout went away (| head): it has what it wanted.
          if (opts.out === undefined && (err as NodeJS.ErrnoException).code === 'EPIPE') return;
          // A partial file must not pass for the object.
          if (opts.out !== undefined) {
            (sink as fs.WriteStream).destroy();
            fs.rmSync(opts.out, { force: true });
          }
          // The store's failures (opening or reading the object) are AppErrors that name the
          // object; only what is left failed on the way out.
          throw err instanceof AppError ? err : fileError(`writing ${opts.out ?? 'stdout'}`, err);
        }
      });
    });

  return objects;
}
