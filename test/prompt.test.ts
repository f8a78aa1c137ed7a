import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { openBlufio } from '../src/index.js';
import { dbEncryptEnable } from '../src/dbcrypt/index.js';
import { CLI, silentLogger, sleep, tmpDir } from './helpers/index.js';

const haveTmux = spawnSync('tmux', ['-V']).status === 0;

/** A real terminal: the CLI runs in a tmux pane; we type into it and read the screen. */
class Terminal {
  readonly socketName: string;
  private readonly socket = `blufio-test-${process.pid}-${Math.random().toString(36).slice(2)}`;

  constructor(command: string, env: Record<string, string>) {
    this.socketName = this.socket;
    const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    const r = spawnSync('tmux', ['-L', this.socket, '-f', '/dev/null', 'new-session', '-d', '-s', 't', '-x', '200', '-y', '50',
      `env -i PATH="${process.env.PATH}" HOME="${env.HOME}" ${vars.join(' ')} ${command}; echo "EXIT=$?"; sleep 60`]);
    assert.equal(r.status, 0, String(r.stderr));
  }

  screen(): string {
    return spawnSync('tmux', ['-L', this.socket, 'capture-pane', '-p', '-t', 't'], { encoding: 'utf8' }).stdout;
  }

  async waitFor(re: RegExp, timeoutMs = 20_000): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const s = this.screen();
      if (re.test(s)) return s;
      if (Date.now() > end) assert.fail(`timed out waiting for ${re} on the screen:\n${s}`);
      await sleep(50);
    }
  }

  type(text: string, ...keysBefore: string[]): void {
    for (const k of keysBefore) spawnSync('tmux', ['-L', this.socket, 'send-keys', '-t', 't', k]);
    spawnSync('tmux', ['-L', this.socket, 'send-keys', '-t', 't', '-l', '--', text]);
    spawnSync('tmux', ['-L', this.socket, 'send-keys', '-t', 't', 'Enter']);
  }

  kill(): void {
    spawnSync('tmux', ['-L', this.socket, 'kill-server']);
  }
}

describe('hidden prompts in a real terminal', { skip: haveTmux ? false : 'tmux is not installed (.ci/run installs it)' }, () => {
  it('set-secret asks for the value and a new passphrase twice, echoing none of it', async () => {
    const dir = tmpDir();
    const t = new Terminal(`node ${CLI} config set-secret openai_api_key`, { HOME: dir, BLUFIO_DATA_DIR: path.join(dir, 'data') });
    try {
      await t.waitFor(/Value for openai_api_key:\s*$/m);
      // Arrow keys and Home send escape sequences: they must not end up inside the value.
      spawnSync('tmux', ['-L', t.socketName, 'send-keys', '-t', 't', '-l', 'sk-proj-typed']);
      t.type('-value-0123456789abcd', 'Left', 'Home');
      await t.waitFor(/New vault passphrase.*:\s*$/m);
      t.type('typed passphrase');
      await t.waitFor(/Repeat the new vault passphrase.*:\s*$/m);
      t.type('typed passphrase');
      const screen = await t.waitFor(/EXIT=\d+/);
      assert.match(screen, /stored openai_api_key/);
      assert.match(screen, /EXIT=0/);
      assert.doesNotMatch(screen, /typed-value|typed passphrase/, 'nothing typed is echoed');
    } finally {
      t.kill();
    }
    const app = await openBlufio({ dataDir: path.join(dir, 'data'), passphrase: 'typed passphrase', logger: silentLogger(), env: {} });
    assert.equal((await app.vault.get('openai_api_key')).expose(), 'sk-proj-typed-value-0123456789abcd');
    await app.close();
  });

  it('a confirmation that does not match is refused and nothing is stored', async () => {
    const dir = tmpDir();
    const t = new Terminal(`node ${CLI} config set-secret k`, { HOME: dir, BLUFIO_DATA_DIR: path.join(dir, 'data') });
    try {
      await t.waitFor(/Value for k:\s*$/m);
      t.type('some-value-0123456789abcdef');
      await t.waitFor(/New vault passphrase.*:\s*$/m);
      t.type('first');
      await t.waitFor(/Repeat the new vault passphrase.*:\s*$/m);
      t.type('second');
      const screen = await t.waitFor(/EXIT=\d+/);
      assert.match(screen, /error\[KC_INVALID_INPUT\]: the two entries of the vault passphrase do not match/);
      assert.match(screen, /EXIT=1/);
    } finally {
      t.kill();
    }
    const app = await openBlufio({ dataDir: path.join(dir, 'data'), logger: silentLogger(), env: {} });
    assert.equal((await app.vault.status()).exists, false);
    await app.close();
  });

  it('an existing vault asks once for the passphrase; a wrong one is KC_VAULT_KEY_INVALID', async () => {
    const dir = tmpDir();
    const app = await openBlufio({ dataDir: path.join(dir, 'data'), passphrase: 'right one', logger: silentLogger(), env: {} });
    await app.vault.set('k', 'value-0123456789abcdefghij');
    await app.close();
    const t = new Terminal(`node ${CLI} config list-secrets`, { HOME: dir, BLUFIO_DATA_DIR: path.join(dir, 'data') });
    try {
      await t.waitFor(/Vault passphrase:\s*$/m);
      t.type('wrong one');
      const screen = await t.waitFor(/EXIT=\d+/);
      assert.match(screen, /KC_VAULT_KEY_INVALID/);
      assert.doesNotMatch(screen, /wrong one/);
    } finally {
      t.kill();
    }
  });

  it('an encrypted database asks for its passphrase; the same one typed once opens the vault too, a different one is asked for', async () => {
    for (const same of [true, false]) {
      const dir = tmpDir();
      const data = path.join(dir, 'data');
      const { mkdirSync } = await import('node:fs');
      mkdirSync(data);
      await dbEncryptEnable(data, { passphraseEnv: 'DBKEY', env: { DBKEY: 'db passphrase' } });
      const app = await openBlufio({ dataDir: data, passphrase: same ? 'db passphrase' : 'vault passphrase', logger: silentLogger(), env: { DBKEY: 'db passphrase' } });
      await app.vault.set('k', 'value-for-the-test-0123456789');
      await app.close();
      // DBKEY is not set in the terminal: the key is asked for.
      const t = new Terminal(`node ${CLI} config list-secrets`, { HOME: dir, BLUFIO_DATA_DIR: data });
      try {
        await t.waitFor(/Database passphrase:\s*$/m);
        t.type('db passphrase');
        if (!same) {
          await t.waitFor(/Vault passphrase:\s*$/m);
          t.type('vault passphrase');
        }
        const screen = await t.waitFor(/EXIT=\d+/);
        assert.match(screen, /EXIT=0/, screen);
        assert.match(screen, /\bk\b/);
        assert.equal(/Vault passphrase:/.test(screen), !same, screen);
        assert.doesNotMatch(screen, /db passphrase|vault passphrase|value-for-the-test/, 'nothing typed or secret is echoed');
      } finally {
        t.kill();
      }
    }
  });

  it('a database encrypted from birth asks for its new passphrase twice: a typo is refused, not made its key (review r10)', async () => {
    // Before: asked once, so a typo became the key of the new database, with no word of it.
    const dir = tmpDir();
    const data = path.join(dir, 'data');
    fs.mkdirSync(data);
    await dbEncryptEnable(data, { passphraseEnv: 'DBKEY', env: { DBKEY: 'db passphrase' } });
    for (const second of ['db passphrasf', 'db passphrase']) {
      const t = new Terminal(`node ${CLI} sessions list`, { HOME: dir, BLUFIO_DATA_DIR: data });
      try {
        await t.waitFor(/New database passphrase \(it cannot be recovered if lost\):\s*$/m);
        t.type('db passphrase');
        await t.waitFor(/Repeat the new database passphrase:\s*$/m);
        t.type(second);
        const screen = await t.waitFor(/EXIT=\d+/);
        assert.doesNotMatch(screen, /db passphras/, 'nothing typed is echoed');
        if (second !== 'db passphrase') {
          assert.match(screen, /KC_INVALID_INPUT\]: the two entries of the database passphrase do not match/, screen);
          assert.match(screen, /EXIT=1/);
          assert.equal(fs.existsSync(path.join(data, 'blufio.db')), false, 'no database was made');
        } else assert.match(screen, /EXIT=0/, screen);
      } finally {
        t.kill();
      }
    }
    const app = await openBlufio({ dataDir: data, logger: silentLogger(), env: { DBKEY: 'db passphrase' } });
    assert.deepEqual(await app.sessions.list(), []);
    await app.close();
  });

  /**
   * Signals the node process whose command line ends with `tail` (read from /proc, as pkill would,
   * which not every CI image has): only the CLI itself, not the shell or tmux, whose command
   * lines hold the same words.
   */
  const signalCli = (tail: string, sig: NodeJS.Signals): void => {
    for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      let argv: string[];
      try {
        argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
      } catch {
        continue;
      }
      if (path.basename(argv[0] ?? '') === 'node' && argv.join(' ').endsWith(tail)) process.kill(Number(pid), sig);
    }
  };

  /** A command in the pane, then a shell `read` that shows whatever the terminal still holds for the shell. */
  const thenRead = (cmd: string): string => `${cmd}; echo "RC=$?"; read -r LEFT; echo "LEFT=[$LEFT]"`;

  it('a paste of several lines is refused whole, and none of it is left for the shell to run', async () => {
    const pem = ['-----BEGIN PRIVATE KEY-----', ...Array.from({ length: 60 }, (_, i) => `SECRETLINE${i}${'A'.repeat(50)}`), '-----END PRIVATE KEY-----', ''].join('\n');
    for (const bracketed of [true, false]) {
      const dir = tmpDir();
      const t = new Terminal(thenRead(`node ${CLI} config set-secret tls.key`), { HOME: dir, BLUFIO_DATA_DIR: path.join(dir, 'data') });
      try {
        await t.waitFor(/Value for tls\.key:\s*$/m);
        if (bracketed) {
          // What a terminal does with a paste once the program asked for bracketed paste.
          spawnSync('tmux', ['-L', t.socketName, 'set-buffer', '--', pem]);
          spawnSync('tmux', ['-L', t.socketName, 'paste-buffer', '-p', '-t', 't']);
        } else {
          spawnSync('tmux', ['-L', t.socketName, 'send-keys', '-t', 't', '-l', '--', pem]);
        }
        const screen = await t.waitFor(/RC=\d+/);
        assert.match(screen, /RC=1/, screen);
        assert.match(screen, /KC_INVALID_INPUT\]: what was typed or pasted has more than one line/);
        // The shell's `read` must wait for new input: nothing of the paste is still queued.
        await sleep(300);
        t.type('nothing-left');
        const after = await t.waitFor(/LEFT=\[/);
        assert.match(after, /LEFT=\[nothing-left\]/, after);
        assert.doesNotMatch(after, /SECRETLINE/);
      } finally {
        t.kill();
      }
      assert.equal(fs.existsSync(path.join(dir, 'data', 'vault.json')), false, 'nothing was stored, no vault made');
    }
  });

  it('a one-line paste ending in a newline is taken as typed', async () => {
    const dir = tmpDir();
    const t = new Terminal(`node ${CLI} config set-secret openai_api_key`, { HOME: dir, BLUFIO_DATA_DIR: path.join(dir, 'data') });
    try {
      await t.waitFor(/Value for openai_api_key:\s*$/m);
      spawnSync('tmux', ['-L', t.socketName, 'set-buffer', '--', 'sk-proj-pasted-value-0123456789\n']);
      spawnSync('tmux', ['-L', t.socketName, 'paste-buffer', '-p', '-t', 't']);
      await t.waitFor(/New vault passphrase.*:\s*$/m);
      t.type('typed passphrase');
      await t.waitFor(/Repeat the new vault passphrase.*:\s*$/m);
      t.type('typed passphrase');
      assert.match(await t.waitFor(/EXIT=\d+/), /EXIT=0/);
    } finally {
      t.kill();
    }
    const app = await openBlufio({ dataDir: path.join(dir, 'data'), passphrase: 'typed passphrase', logger: silentLogger(), env: {} });
    assert.equal((await app.vault.get('openai_api_key')).expose(), 'sk-proj-pasted-value-0123456789');
    await app.close();
  });

  it('bytes that are not UTF-8 are refused, not turned into U+FFFD; Ctrl-C cancels with exit code 2', async () => {
    const dir = tmpDir();
    const t = new Terminal(thenRead(`node ${CLI} config set-secret k`), { HOME: dir, BLUFIO_DATA_DIR: path.join(dir, 'data') });
    try {
      await t.waitFor(/Value for k:\s*$/m);
      // p, then ä as a Latin-1 terminal sends it, then the rest of the line typed after it.
      spawnSync('tmux', ['-L', t.socketName, 'send-keys', '-t', 't', '-H', '70', 'e4']);
      await sleep(200);
      t.type('ssword123');
      const screen = await t.waitFor(/RC=\d+/);
      assert.match(screen, /RC=1/, screen);
      assert.match(screen, /KC_INVALID_INPUT\]: the terminal sent bytes that are not UTF-8/);
      // Refused at Enter, not at the bad byte: the rest of the line was not left for the shell.
      await sleep(300);
      t.type('nothing-left');
      const after = await t.waitFor(/LEFT=\[/);
      assert.match(after, /LEFT=\[nothing-left\]/, after);
      assert.doesNotMatch(after, /ssword/);
    } finally {
      t.kill();
    }
    const c = new Terminal(`node ${CLI} config set-secret k`, { HOME: dir, BLUFIO_DATA_DIR: path.join(dir, 'data') });
    try {
      await c.waitFor(/Value for k:\s*$/m);
      spawnSync('tmux', ['-L', c.socketName, 'send-keys', '-t', 't', 'C-c']);
      const screen = await c.waitFor(/EXIT=\d+/);
      assert.match(screen, /EXIT=2/, screen);
      assert.match(screen, /KC_CLI_USAGE\]: cancelled at the prompt/);
    } finally {
      c.kill();
    }
  });

  it('a bracketed paste whose end comes late is drained to its end marker; killed at a prompt, the terminal stops marking pastes', async () => {
    const dir = tmpDir();
    const t = new Terminal(thenRead(`node ${CLI} config set-secret k`), { HOME: dir, BLUFIO_DATA_DIR: path.join(dir, 'data') });
    try {
      await t.waitFor(/Value for k:\s*$/m);
      // A terminal sending a long paste in pieces, the last one well after the drain's quiet time.
      spawnSync('tmux', ['-L', t.socketName, 'send-keys', '-t', 't', '-l', '--', '\u001b[200~line-1-of-a-key\rline-2\r']);
      await sleep(600);
      spawnSync('tmux', ['-L', t.socketName, 'send-keys', '-t', 't', '-l', '--', 'echo line-3-ran\r\u001b[201~']);
      const screen = await t.waitFor(/RC=\d+/);
      assert.match(screen, /more than one line/, screen);
      await sleep(300);
      t.type('nothing-left');
      const after = await t.waitFor(/LEFT=\[/);
      assert.match(after, /LEFT=\[nothing-left\]/, after);
    } finally {
      t.kill();
    }
    const name = `k${process.pid}x${Date.now()}`;
    const k = new Terminal(thenRead(`node ${CLI} config set-secret ${name}`), { HOME: dir, BLUFIO_DATA_DIR: path.join(dir, 'data') });
    try {
      await k.waitFor(new RegExp(`Value for ${name}:\\s*$`, 'm'));
      signalCli(`set-secret ${name}`, 'SIGTERM');
      assert.match(await k.waitFor(/RC=\d+/), /RC=143/);
      // Were pastes still marked, the shell's read would get the markers around the text.
      spawnSync('tmux', ['-L', k.socketName, 'set-buffer', '--', 'pasted-after\n']);
      spawnSync('tmux', ['-L', k.socketName, 'paste-buffer', '-p', '-t', 't']);
      const after = await k.waitFor(/LEFT=\[/);
      assert.match(after, /LEFT=\[pasted-after\]/, after);
    } finally {
      k.kill();
    }
  });

  it('Tab is kept as typed; another control character, or a lone Escape, refuses the line instead of vanishing (review srv, finding 4)', async () => {
    const dir = tmpDir();
    const env = { HOME: dir, BLUFIO_DATA_DIR: path.join(dir, 'data'), BLUFIO_VAULT_KEY: 'vault-pass-123' };
    // keys: tmux key names, or literal text as ['-l', text]; then Enter.
    const setSecret = async (name: string, keys: (string | [string, string])[]): Promise<string> => {
      const t = new Terminal(`node ${CLI} config set-secret ${name}`, env);
      try {
        await t.waitFor(new RegExp(`Value for ${name}:\\s*$`, 'm'));
        for (const k of keys) spawnSync('tmux', ['-L', t.socketName, 'send-keys', '-t', 't', ...(typeof k === 'string' ? [k] : [k[0], '--', k[1]])]);
        spawnSync('tmux', ['-L', t.socketName, 'send-keys', '-t', 't', 'Enter']);
        return await t.waitFor(/EXIT=\d+/);
      } finally {
        t.kill();
      }
    };
    const tab = await setSecret('tab', [['-l', 'abcd'], 'Tab', ['-l', 'efgh-ijkl']]);
    assert.match(tab, /stored tab/);
    assert.match(tab, /EXIT=0/);
    const ctrl = await setSecret('ctrl', [['-l', 'ab'], 'C-a', ['-l', 'cd-efgh-ijkl']]);
    assert.match(ctrl, /error\[KC_INVALID_INPUT\]: what was typed holds a control character \(U\+0001\); nothing was used/);
    assert.match(ctrl, /EXIT=1/);
    const esc = await setSecret('esc', [['-l', 'ab'], 'Escape', ['-l', 'xcd-efgh-ijkl']]);
    assert.match(esc, /control character \(U\+001B, Escape/);
    assert.match(esc, /EXIT=1/);
    // Escape then `[` or `O` and text no key sends: typed, so refused; the Enter in it is not swallowed (second review).
    for (const [name, after] of [['csi', '[12!'], ['ss3', 'Oops']] as const) {
      const seq = await setSecret(name, [['-l', 'pa'], 'Escape', ['-l', after]]);
      assert.match(seq, /control character \(U\+001B, Escape/, name);
      assert.match(seq, /EXIT=1/, name);
    }
    // Edited away (Ctrl-U clears the line), a control character is gone like any other.
    const edited = await setSecret('edited', [['-l', 'ab'], 'C-a', 'C-u', ['-l', 'clean-value-0123'], 'Left', 'Right']);
    assert.match(edited, /EXIT=0/);
    const app = await openBlufio({ dataDir: env.BLUFIO_DATA_DIR, passphrase: env.BLUFIO_VAULT_KEY, logger: silentLogger(), env: {} });
    assert.equal((await app.vault.get('tab')).expose(), 'abcd\tefgh-ijkl');
    assert.equal((await app.vault.get('edited')).expose(), 'clean-value-0123');
    assert.deepEqual((await app.vault.list()).map((x) => x.name).sort(), ['edited', 'tab']);
    await app.close();
  });

  it('stopped at the prompt and resumed with fg, it hides what is typed again and asks again with the line cleared (QA r10)', async () => {
    // Before: the shell put echo back on at the stop and nothing turned it off after `fg`, so the
    // rest of the passphrase was shown and kept in the scrollback. SIGSTOP cannot be caught: only
    // the resume can set things right; SIGTSTP also gives the shell its terminal back first.
    const dir = tmpDir();
    const app = await openBlufio({ dataDir: path.join(dir, 'data'), passphrase: 'correct-horse-battery', logger: silentLogger(), env: {} });
    await app.vault.set('k', 'value-0123456789abcdefghij');
    await app.close();
    for (const sig of ['SIGTSTP', 'SIGSTOP'] as const) {
      // An interactive shell with job control, as a user has.
      const t = new Terminal('bash --norc --noprofile -i', { HOME: dir, BLUFIO_DATA_DIR: path.join(dir, 'data') });
      try {
        t.type(`PS1='$ '`);
        t.type(`node ${CLI} config list-secrets`);
        await t.waitFor(/Vault passphrase:\s*$/m);
        spawnSync('tmux', ['-L', t.socketName, 'send-keys', '-t', 't', '-l', '--', 'correct-']);
        await sleep(300);
        signalCli('config list-secrets', sig);
        await t.waitFor(/Stopped/);
        t.type('fg');
        await t.waitFor(/Vault passphrase:[\s\S]*Stopped[\s\S]*the line was cleared\)\nVault passphrase:\s*$/);
        // Asked again, the whole passphrase is typed again (review r10: what was typed before
        // the stop stayed in front of it, and set-secret stored the two run together).
        t.type('correct-horse-battery');
        await t.waitFor(/NAME|error/);
        // `fg` returns the job's exit code.
        t.type('echo "RC=$?"');
        const screen = await t.waitFor(/RC=\d+/);
        assert.match(screen, /RC=0/, `${sig}:\n${screen}`);
        assert.match(screen, /sk-|value|k\s/, screen);
        assert.doesNotMatch(screen, /horse|correct/, `${sig}: the passphrase is on the screen:\n${screen}`);
      } finally {
        t.kill();
      }
    }
  });
});
