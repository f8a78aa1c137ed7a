import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, locateKey } from '../src/config/index.js';
import { readSecretFile } from '../src/config/env-secrets.js';
import { readOnce } from '../src/config/read-once.js';
import { shellWord } from '../src/errors/index.js';
import { runShell, tmpDir } from './helpers/index.js';

function write(text: string | Buffer): string {
  const file = path.join(tmpDir(), 'blufio.toml');
  fs.writeFileSync(file, text);
  return file;
}

function invalid(text: string | Buffer, pattern: RegExp, line?: number): void {
  const file = write(text);
  assert.throws(
    () => loadConfig({ configPath: file, env: { HOME: '/home/x' } }),
    (err: { code?: string; message?: string; details?: { line?: number } }) => {
      assert.equal(err.code, 'KC_CONFIG_INVALID', err.message);
      assert.match(err.message ?? '', pattern);
      assert.ok((err.message ?? '').includes(file), 'names the file');
      if (line !== undefined) {
        assert.equal(err.details?.line, line);
        assert.ok((err.message ?? '').includes(`line ${line}`), err.message);
      }
      return true;
    },
  );
}

describe('config paths', () => {
  it('uses XDG defaults when no file exists, ignoring relative XDG values', () => {
    const c = loadConfig({ env: { HOME: '/home/u', XDG_CONFIG_HOME: '/cfg', XDG_DATA_HOME: '/data' } });
    assert.equal(c.configPath, '/cfg/blufio/blufio.toml');
    assert.equal(c.configFileFound, false);
    assert.equal(c.databasePath, '/data/blufio/blufio.db');
    assert.equal(c.dataDir, '/data/blufio');
    assert.equal(c.storage.durability, 'full');
    const rel = loadConfig({ env: { HOME: '/home/u', XDG_CONFIG_HOME: 'rel', XDG_DATA_HOME: 'rel' } });
    assert.equal(rel.configPath, '/home/u/.config/blufio/blufio.toml');
    assert.equal(rel.databasePath, '/home/u/.local/share/blufio/blufio.db');
  });

  it('--config wins over BLUFIO_CONFIG; an explicit file must exist', () => {
    const a = write('[storage]\ndurability = "normal"\n');
    const b = write('[storage]\ndurability = "full"\n');
    assert.equal(loadConfig({ env: { HOME: '/h', BLUFIO_CONFIG: a } }).storage.durability, 'normal');
    assert.equal(loadConfig({ configPath: b, env: { HOME: '/h', BLUFIO_CONFIG: a } }).storage.durability, 'full');
    assert.throws(() => loadConfig({ configPath: '/nonexistent/blufio.toml', env: { HOME: '/h' } }), { code: 'KC_CONFIG_NOT_FOUND' });
    assert.throws(() => loadConfig({ env: { HOME: '/h', BLUFIO_CONFIG: '/nonexistent.toml' } }), { code: 'KC_CONFIG_NOT_FOUND' });
  });

  it('data directory precedence: option, BLUFIO_DATA_DIR, storage.database_path, XDG', () => {
    const file = write('[storage]\ndatabase_path = "~/db/agent.db"\n');
    const env = { HOME: '/home/u', XDG_DATA_HOME: '/xdg' };
    assert.equal(loadConfig({ configPath: file, env }).databasePath, '/home/u/db/agent.db');
    assert.equal(loadConfig({ configPath: file, env: { ...env, BLUFIO_DATA_DIR: '/env' } }).databasePath, '/env/blufio.db');
    assert.equal(
      loadConfig({ configPath: file, dataDir: '/opt', env: { ...env, BLUFIO_DATA_DIR: '/env' } }).databasePath,
      '/opt/blufio.db',
    );
    const relative = write('[storage]\ndatabase_path = "state/b.db"\n');
    assert.equal(loadConfig({ configPath: relative, env }).databasePath, path.join(path.dirname(relative), 'state', 'b.db'));
  });

  it('accepts a UTF-8 byte order mark and comments', () => {
    const file = write('\uFEFF# my config\n[storage] # tables\ndurability = "normal" # fast\n');
    assert.equal(loadConfig({ configPath: file, env: { HOME: '/h' } }).storage.durability, 'normal');
  });
});

describe('config and passphrase files are read as they were checked', () => {
  it('readOnce reads only a file it judged: one swapped in at the path after the check is judged too', async () => {
    // The config (and a passphrase file) was judged by stat of the path, then read by the path
    // again: a file renamed over it in between was read unjudged.
    const dir = tmpDir();
    const file = path.join(dir, 'blufio.toml');
    const other = path.join(dir, 'other.toml');
    fs.writeFileSync(file, '[logging]\nlevel = "info"\n', { mode: 0o600 });
    fs.writeFileSync(other, '[security]\nallowed_private_ips = ["0.0.0.0/0"]\n');
    fs.chmodSync(other, 0o666);
    const seen: number[] = [];
    const judge = (st: fs.Stats): void => {
      seen.push(st.mode & 0o777);
      if (seen.length === 1) fs.renameSync(other, file); // swapped right after the first look
      else if ((st.mode & 0o002) !== 0) throw new Error('refused: writable by anyone');
    };
    assert.throws(() => readOnce(file, 1024, judge), /refused/);
    assert.deepEqual(seen, [0o600, 0o666]);
    // Unswapped, the file is judged once and read.
    fs.writeFileSync(file, '[logging]\nlevel = "info"\n', { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    const { data, st } = readOnce(file, 1024, (x) => assert.equal(x.mode & 0o002, 0));
    assert.equal(data.toString(), '[logging]\nlevel = "info"\n');
    assert.equal(st.mode & 0o777, 0o600);
    // A socket is refused by the check, not opened (that fails ENXIO, saying less).
    const sock = path.join(dir, 'sock.toml');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      assert.throws(() => loadConfig({ configPath: sock, env: { HOME: '/h' } }), /it is not a regular file/);
    } finally {
      server.close();
    }
    // At most maxBytes + 1 bytes, whatever size the file claims.
    fs.writeFileSync(file, 'x'.repeat(5000));
    assert.equal(readOnce(file, 100, () => undefined).data.length, 101);
  });
});

describe('config validation names the line and the key', () => {
  it('malformed TOML', () => invalid('[storage]\ndurability = "full\n', /malformed TOML/, 2));
  it('an unclosed table header', () => invalid('\n\n[storage\n', /malformed TOML/, 3));
  it('a duplicate key', () => invalid('[storage]\ndurability = "full"\ndurability = "normal"\n', /malformed TOML/, 3));
  it('an unknown key', () => invalid('# c\n[storage]\ndurabilty = "full"\n', /unknown key storage\.durabilty/, 3));
  it('an unknown table', () => invalid('[storage]\n\n[sever]\nport = 1\n', /unknown key sever/, 3));
  it('an invalid enum value', () => invalid('[storage]\nmax_message_bytes = 4096\ndurability = "fast"\n', /storage\.durability/, 3));
  it('a wrong type', () => invalid('[storage]\nmax_message_bytes = "big"\n', /storage\.max_message_bytes/, 2));
  it('a value out of range', () => invalid('[storage]\nmax_message_bytes = 1\n', /at least 1024/, 2));
  it('a float where an integer belongs', () => invalid('[storage]\nlock_timeout_ms = 1.5\n', /storage\.lock_timeout_ms/, 2));
  it('a dotted key at the top level', () => invalid('storage.durability = "slow"\n', /storage\.durability/, 1));
  it('an inline table', () => invalid('storage = { durability = "full", bogus = 1 }\n', /unknown key storage\.bogus/, 1));
  it('a quoted key with odd Unicode', () => invalid('[storage]\n"dürabïlity 🦀" = 1\n', /unknown key storage\.dürabïlity 🦀/, 2));
  it('an empty path', () => invalid('[storage]\ndatabase_path = ""\n', /storage\.database_path must not be empty/, 2));
  it('a path with a NUL', () => invalid('[storage]\ndatabase_path = "a\\u0000b"\n', /storage\.database_path must not contain a NUL/, 2));
  it('a table where a value belongs', () => invalid('[storage.durability]\nx = 1\n', /storage\.durability/, 1));
  it('invalid UTF-8', () => invalid(Buffer.from([0x5b, 0xff, 0xfe, 0x5d, 0x0a]), /not valid UTF-8/));
  it('a file far too large', () => invalid(`# ${'x'.repeat(1024 * 1024 + 10)}\n`, /at most 1 MiB/));
  it('a secret larger than the vault takes (64 KiB as UTF-8), named with its line', () => {
    invalid(`[providers.gcp]\napi_key = """\n${'A'.repeat(70_000)}"""\n`, /providers\.gcp\.api_key must be at most 65536 bytes/, 2);
    invalid(`[channels.x]\n\npassword = "${'€'.repeat(30_000)}"\n`, /channels\.x\.password must be at most 65536 bytes/, 3);
    const file = write(`[providers.gcp]\napi_key = "${'A'.repeat(64 * 1024)}"\n`);
    assert.doesNotThrow(() => loadConfig({ configPath: file, env: { HOME: '/h' } }));
  });
  it('a provider or channel name outside the rule says what a name must be (QA r7)', () => {
    // zod's "Invalid key in record" was all the message said.
    const rule = /must be 1-64 characters: lowercase letters a-z, digits, _ or -, starting with a letter or digit/;
    for (const [text, name, line] of [
      ['[providers.OpenAI]\nbase_url = "https://api.openai.com/v1"\n', 'providers.OpenAI', 1],
      ['# c\n[providers."my llm"]\n', 'providers.my llm', 2],
      ['[channels."тест"]\n', 'channels.тест', 1],
      ['[providers._x]\n', 'providers._x', 1],
    ] as const) {
      invalid(text, new RegExp(`key ${name}: the name "${name.split('.')[1]}" ${rule.source}`), line);
    }
    // Longer than any name may be: named by its length (QA r9).
    invalid(`\n\n[channels.${'a'.repeat(65)}]\n`, new RegExp(`key channels\\.\\(a name of 65 characters\\): the name ${rule.source}`), 3);
    assert.doesNotThrow(() => loadConfig({ configPath: write(`[providers.${'a'.repeat(64)}]\n[channels.0-x_y]\n`), env: { HOME: '/h' } }));
  });
  it('a provider or channel named __proto__ is refused like any bad name, never passed over with its secret in the file (QA r9)', () => {
    // zod's record skips a __proto__ key without a word: the table, and the plaintext key in
    // it, were neither read, refused nor moved into the vault.
    const rule = /must be 1-64 characters: lowercase letters a-z, digits, _ or -, starting with a letter or digit/;
    invalid('[providers.__proto__]\napi_key = "sk-proj-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"\n', new RegExp(`key providers\\.__proto__: the name "__proto__" ${rule.source}`), 1);
    invalid('[providers.ok]\n\n[channels."__proto__"]\nbot_token = "123456:abcdefghijklmnopqrstuvwxyzABCDEFGHI"\n', /key channels\.__proto__: the name "__proto__"/, 3);
    invalid('providers = { __proto__ = { api_key = "x" } }\n', /key providers\.__proto__: the name "__proto__"/, 1);
    // Elsewhere the strict tables already name it as an unknown key.
    invalid('[storage.__proto__]\nx = 1\n', /unknown key storage\.__proto__/, 1);
  });
  it('a very long key name is named by its length, not echoed whole nor cut (QA r9)', () => {
    const long = `sk-${'a'.repeat(4997)}`;
    const check = (text: string, pattern: RegExp): void => {
      assert.throws(() => loadConfig({ configPath: write(text), env: { HOME: '/h' } }), (err: { message?: string }) => {
        assert.match(err.message ?? '', pattern);
        // Not its start either: a key may be a secret on the wrong line, and a cut one is no
        // longer recognisable to the redactor.
        assert.ok(!(err.message ?? '').includes('sk-a'), err.message);
        assert.ok(!(err.message ?? '').includes('🦀'), err.message);
        return true;
      });
    };
    check(`[providers."${long}"]\n`, /key providers\.\(a name of 5000 characters\): the name must be 1-64 characters/);
    check(`[storage]\n"${long}" = 1\n`, /unknown key storage\.\(a name of 5000 characters\)/);
    // Counted in characters, not UTF-16 units.
    check(`[storage]\n"${'🦀'.repeat(150)}" = 1\n`, /unknown key storage\.\(a name of 150 characters\)/);
    // Up to 64 characters (the longest a name may be) a name is shown as it is.
    check(`[storage]\n${'b'.repeat(64)} = 1\n`, new RegExp(`unknown key storage\\.${'b'.repeat(64)}$`));
  });
  it('a quoted key written with escapes is found on its own line', () => invalid('[storage]\n"dur\\u0061bility" = "fast"\n', /storage\.durability/, 2));
  it('a hint\'s chmod command pastes into a shell as it is, whatever the path (QA r9)', async () => {
    // Each word read back by a real bash as one argument, unchanged, and nothing in it run.
    const words = ['/plain/path-1.2_x', "it's", 'a b', '$(touch pwned)', '`id`', 'x;y', 'new\nline', 'tab\there', '*?[', '~', '"\'\'"', 'ü 🦀', ''];
    const cwd = tmpDir();
    const r = await runShell(`printf '%s\\0' ${words.map(shellWord).join(' ')}`, { cwd });
    assert.deepEqual(r.stdout.split('\0').slice(0, -1), words, r.stderr);
    assert.deepEqual(fs.readdirSync(cwd), []);
    assert.equal(shellWord('/var/lib/blufio'), '/var/lib/blufio', 'a plain path stays as it is');
    // The config file hint, run as it is printed.
    const dir = path.join(tmpDir(), "Bob's config");
    fs.mkdirSync(dir);
    const file = path.join(dir, 'blufio.toml');
    fs.writeFileSync(file, '', { mode: 0o666 });
    fs.chmodSync(file, 0o666);
    let hint = '';
    assert.throws(() => loadConfig({ configPath: file, env: { HOME: '/h' } }), (err: { hint?: string }) => {
      hint = err.hint ?? '';
      return true;
    });
    assert.equal(hint, `chmod o-w '${dir.replace("'", `'\\''`)}/blufio.toml'`);
    assert.equal((await runShell(hint, { cwd })).code, 0);
    assert.doesNotThrow(() => loadConfig({ configPath: file, env: { HOME: '/h' } }));
  });
  it('a file, or a directory without the sticky bit, that any user can write', () => {
    const file = write('[storage]\ndurability = "full"\n');
    fs.chmodSync(file, 0o666);
    assert.throws(() => loadConfig({ configPath: file, env: { HOME: '/h' } }), (err: { code?: string; message?: string; hint?: string }) => {
      assert.equal(err.code, 'KC_CONFIG_INVALID');
      assert.match(err.message ?? '', /can be written by any user \(mode 666\)/);
      assert.equal(err.hint, `chmod o-w ${file}`);
      return true;
    });
    fs.chmodSync(file, 0o664);
    fs.chmodSync(path.dirname(file), 0o777);
    assert.throws(() => loadConfig({ configPath: file, env: { HOME: '/h' } }), /, on the way to it, can be written by any user/);
    // The same through a link from a private directory, and from a private directory inside it.
    const home = tmpDir();
    const link = path.join(home, 'blufio.toml');
    fs.symlinkSync(file, link);
    assert.throws(() => loadConfig({ configPath: link, env: { HOME: '/h' } }), /, on the way to it, can be written by any user/);
    const inner = path.join(path.dirname(file), 'private');
    fs.mkdirSync(inner, { mode: 0o700 });
    fs.writeFileSync(path.join(inner, 'c.toml'), '');
    assert.throws(() => loadConfig({ configPath: path.join(inner, 'c.toml'), env: { HOME: '/h' } }), /, on the way to it, can be written by any user/);
    // Sticky, like /tmp: others cannot replace a file they do not own.
    fs.chmodSync(path.dirname(file), 0o1777);
    assert.equal(loadConfig({ configPath: file, env: { HOME: '/h' } }).storage.durability, 'full');
  });
  it('`..` after a symbolic link is taken where the link leads, as the kernel does (config and passphrase file)', () => {
    // safe/L -> ww/sub, so safe/L/../key is ww/key: in a directory any user can write. Taken by
    // the text, `..` made it safe/key, which was checked instead of the file read.
    const root = tmpDir();
    const safe = path.join(root, 'safe');
    const ww = path.join(root, 'ww');
    fs.mkdirSync(path.join(ww, 'sub'), { recursive: true });
    fs.mkdirSync(safe, { mode: 0o700 });
    fs.chmodSync(ww, 0o777);
    for (const d of [safe, ww]) {
      fs.writeFileSync(path.join(d, 'key'), `pass phrase in ${path.basename(d)}\n`, { mode: 0o600 });
      fs.writeFileSync(path.join(d, 'blufio.toml'), '[storage]\ndurability = "full"\n', { mode: 0o600 });
    }
    fs.symlinkSync(path.join(ww, 'sub'), path.join(safe, 'L'));
    const via = (name: string): string => path.join(safe, 'L') + `/../${name}`;
    assert.throws(() => readSecretFile(via('key'), 'BLUFIO_VAULT_KEY_FILE'), new RegExp(`${ww}, on the way to it, can be written by any user`));
    assert.throws(() => loadConfig({ configPath: via('blufio.toml'), env: { HOME: '/h' } }), new RegExp(`${ww}, on the way to it, can be written by any user`));
    // Relative, from inside the link's target.
    const cwd = process.cwd();
    try {
      process.chdir(path.join(safe, 'L'));
      assert.throws(() => readSecretFile('../key', 'BLUFIO_VAULT_KEY_FILE'), /can be written by any user/);
    } finally {
      process.chdir(cwd);
    }
    fs.chmodSync(ww, 0o755);
    assert.equal(readSecretFile(via('key'), 'BLUFIO_VAULT_KEY_FILE').value, 'pass phrase in ww');
  });
  it('a directory any user may write is accepted on a read-only mount (a Kubernetes ConfigMap)', (t) => {
    const dir = path.join(tmpDir(), 'configmap');
    fs.mkdirSync(dir);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'mode=0777,size=1m', 'tmpfs', dir]).status !== 0) return t.skip('mounting needs privileges this run does not have');
    try {
      fs.writeFileSync(path.join(dir, 'blufio.toml'), '[storage]\ndurability = "full"\n', { mode: 0o644 });
      fs.writeFileSync(path.join(dir, 'open.toml'), '', { mode: 0o666 });
      fs.chmodSync(path.join(dir, 'open.toml'), 0o666);
      assert.throws(() => loadConfig({ configPath: path.join(dir, 'blufio.toml'), env: { HOME: '/h' } }), /can be written by any user/);
      assert.equal(spawnSync('mount', ['-o', 'remount,ro', dir]).status, 0);
      assert.equal(loadConfig({ configPath: path.join(dir, 'blufio.toml'), env: { HOME: '/h' } }).storage.durability, 'full');
      // A file's own 666 still counts: read-only here may be a bind mount of a file writable at its source.
      assert.throws(() => loadConfig({ configPath: path.join(dir, 'open.toml'), env: { HOME: '/h' } }), /the file can be written by any user/);
    } finally {
      spawnSync('umount', [dir]);
    }
  });
  it('a directory instead of a file', () => {
    const dir = tmpDir();
    assert.throws(() => loadConfig({ configPath: dir, env: { HOME: '/h' } }), { code: 'KC_CONFIG_INVALID' });
  });
  it('the hint lists the known keys of the table', () => {
    const file = write('[storage]\ndurabilty = "full"\n');
    assert.throws(() => loadConfig({ configPath: file, env: { HOME: '/h' } }), (err: { hint?: string }) => {
      assert.match(err.hint ?? '', /known keys in \[storage\]: .*durability/);
      return true;
    });
  });
});

describe('config: the answer bound holds the largest claimable job', () => {
  it('refuses a max_response_bytes that cannot carry a job of max_payload_bytes, naming both keys; the defaults pass', () => {
    // The default max_payload_bytes (1 MiB) plus a job's other fields and last error pass 1 MiB.
    invalid('[server]\nmax_response_bytes = 1048576\n', /\[server\] max_response_bytes \(1048576\) cannot hold the largest job .*\[queue\] max_payload_bytes \(1048576\)/, 2);
    invalid('[queue]\nmax_payload_bytes = 67108864\n[server]\nmax_response_bytes = 67108864\n', /max_payload_bytes \(67108864\)/, 4);
    const defaults = loadConfig({ configPath: write(''), env: { HOME: '/home/x' } });
    assert.ok(defaults.server.maxResponseBytes > defaults.queue.maxPayloadBytes);
    const small = loadConfig({ configPath: write('[server]\nmax_response_bytes = 1048576\n[queue]\nmax_payload_bytes = 900000\n'), env: { HOME: '/home/x' } });
    assert.equal(small.queue.maxPayloadBytes, 900000);
    const file = write('[server]\nmax_response_bytes = 1048576\n');
    assert.throws(() => loadConfig({ configPath: file, env: { HOME: '/home/x' } }), (err: { hint?: string }) => {
      assert.match(err.hint ?? '', /raise \[server\] max_response_bytes to at least \d+, or lower \[queue\] max_payload_bytes to at most \d+/);
      return true;
    });
  });
});

describe('locateKey', () => {
  it('skips look-alikes inside multi-line strings and arrays', () => {
    const text = [
      '[logging]', // 1
      'level = """', // 2
      'durability = "nope"', // 3
      '"""', // 4
      'list = [', // 5
      '  "durability = 1",', // 6
      ']', // 7
      '[storage]', // 8
      'durability = "x"', // 9
      '[[hooks]]', // 10
      'name = "a"', // 11
      '[[hooks]]', // 12
      'name = "b"', // 13
    ].join('\n');
    assert.equal(locateKey(text, ['storage', 'durability']), 9);
    assert.equal(locateKey(text, ['logging', 'durability']), 1);
    assert.equal(locateKey(text, ['hooks', 1, 'name']), 13);
    assert.equal(locateKey(text, ['missing']), undefined);
  });
});
