// Runs every code block of the project's Markdown as pasted: `node tests/docs/run.mjs
// [--only TEXT] [--list] [FILE.md ...]` (default: every tracked .md file). The markers are
// described in tests/docs/blocks.mjs. Each scenario of each file is one test: its files are
// written into a fresh directory <work>/<file>/<scenario>/, its shell blocks run there
// in order, and each output block must be what the run before it printed.
//
// What a scenario finds, as a new user would after installing from this checkout (the
// environment, never the blocks, is what differs from a user's machine):
// The scenario directories are under $TMPDIR/polar-license-docs (DOCS_WORK_DIR), the logs in
// target/docs/<file>/<scenario>.log.
//   - `polar-license/` beside it: this checkout (a symbolic link), for the build-from-source
//     steps (`cd polar-license && bash bindings/c/install.sh --prefix ~/.local`);
//   - HOME is the scenario's own `home/`, with `~/.cargo/bin` and `~/.local/bin` on PATH
//     (`cargo install` lands there: CARGO_INSTALL_ROOT);
//   - `npm install polar-license` resolves to the packed tarball (target/npm/*.tgz) through a
//     local registry (tests/docs/registry.mjs), and `@polar-license/tauri` to the Tauri
//     plugin's guest package (crates/tauri/guest-js) packed; other packages come from npm's
//     registry;
//   - `pip install polar-license==0.1.0` resolves to the wheel in target/python/wheels
//     (PIP_FIND_LINKS; not on PyPI yet), other Python packages to PyPI;
//   - `npm install electron` resolves to a stand-in (tests/docs/electron-standin: its index.js
//     says what it stands in): `npx electron .` runs the app's main process, preload and page
//     scripts in one node process over a minimal DOM, prints what the page shows, and plays the
//     user: it types $ELECTRON_STANDIN_TYPE (here USER_TYPES, the emulator's demo key) into a
//     form the page shows;
//   - a `browse URL` block's page opens in headless Chromium (/usr/bin/chromium through
//     scripts/npm's playwright-core; one profile per scenario, so localStorage stays between
//     visits), which plays the user too: while the page shows a <form>, it types the next of
//     USER_TYPES into its first <input> and presses Enter; then it reloads the page once (a
//     second visit). The run's output is the page's visible text (its non-blank lines,
//     trimmed) each time it settles, with a `(typed) VALUE` and a `(reloaded)` line; an
//     uncaught error in the page fails the block. PYTHONUNBUFFERED=1, so that
//     `python3 -m http.server` prints its first line at once;
//   - a Cargo.toml's `polar-license = "0.1"` and `polar-license-emulator = "0.1"` (with the
//     `polar-license-rules` the emulator depends on) resolve to the
//     crates as `cargo package` packs them (a `[patch.crates-io]` in the scenario directory's
//     .cargo/config.toml), built in this checkout's target/ (shared: compiled once).
// Last line: `docs: N passed, N failed` (scenarios; a file with a broken relative link, or an
// unmarked or badly marked block, counts as one failed).
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { blocks, outputMatches } from './blocks.mjs';
import { internalLine, selfCheck } from './internals.mjs';
import { installLines } from './install-lines.mjs';
import { startRegistry } from './registry.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const OUT = join(ROOT, 'target', 'docs');
// Outside the checkout: under it, `cargo new` would make the user's project a member of this
// workspace.
const WORK = process.env.DOCS_WORK_DIR ?? join(tmpdir(), 'polar-license-docs');
/** What the stand-in user types into a page's form, in order: the emulator's demo key. */
const USER_TYPES = ['DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A'];
const BLOCK_TIMEOUT_MS = Number(process.env.DOCS_BLOCK_TIMEOUT ?? 900) * 1000;

const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : null;
const listOnly = args.includes('--list');
const prebuild = args.includes('--prebuild');
const files = args.filter((a, i) => a.endsWith('.md') && args[i - 1] !== '--only');

function markdownFiles() {
  const out = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '*.md'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return out.split('\n').filter((f) => f && !f.includes('node_modules/') && existsSync(join(ROOT, f)));
}

/** Relative links of `file` (`[text](path)`, outside code blocks) to a file or directory that
 * does not exist in the checkout: one error each. */
function brokenLinks(file) {
  const text = readFileSync(join(ROOT, file), 'utf8').replace(/^(```|~~~)[^]*?^\1/gm, '');
  const out = [];
  for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    const path = target.split('#')[0];
    if (!path || /^[a-z]+:/i.test(path)) continue;
    if (!existsSync(resolve(ROOT, dirname(file), path))) out.push(`${file}: a link to ${target}, which does not exist`);
  }
  return out;
}

/** The scenarios of one file, in order: `[name, [block, ...]]`. */
function scenarios(file) {
  const all = blocks(join(ROOT, file));
  const errors = all.filter((b) => b.error).map((b) => b.error);
  errors.push(...brokenLinks(file));
  const byName = new Map();
  const skipped = [];
  for (const b of all) {
    if (!b.marker) continue;
    if (b.marker.kind === 'not-run') {
      skipped.push(`${file}:${b.line}: ${b.marker.reason}`);
      continue;
    }
    if (!byName.has(b.marker.scenario)) byName.set(b.marker.scenario, []);
    byName.get(b.marker.scenario).push(b);
  }
  for (const [name, list] of byName) {
    if (!list.some((b) => b.marker.kind === 'run')) {
      errors.push(`${file}: scenario ${name} writes files but runs nothing`);
    }
    const firstRun = list.findIndex((b) => b.marker.kind === 'run');
    const outputFirst = list.findIndex((b) => b.marker.kind === 'output');
    if (outputFirst !== -1 && outputFirst < firstRun) {
      errors.push(`${file}:${list[outputFirst].line}: an output block before any run of ${name}`);
    }
  }
  return { errors, skipped, list: [...byName] };
}

function slug(file) {
  return file.replace(/\.md$/, '').replace(/[^\w-]+/g, '_');
}

/** Packs the Rust crates a user's Cargo.toml names; returns their unpacked directories. */
function packCrates() {
  const dir = join(OUT, 'crates');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const crates = ['polar-license', 'polar-license-emulator', 'polar-license-rules'];
  // Its warnings (tests left out of the package, …) go to a log, shown only if it fails.
  const packed = spawnSync(
    'cargo',
    ['package', '--no-verify', '--allow-dirty', ...crates.flatMap((c) => ['-p', c])],
    { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] },
  );
  writeFileSync(join(OUT, 'cargo-package.log'), packed.stderr ?? '');
  if (packed.status !== 0) throw new Error(`cargo package failed:\n${packed.stderr}`);
  const meta = JSON.parse(execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { cwd: ROOT, encoding: 'utf8' }));
  const pkgDir = join(meta.target_directory, 'package');
  const found = {};
  for (const c of crates) {
    const version = meta.packages.find((p) => p.name === c).version;
    execFileSync('tar', ['-xzf', join(pkgDir, `${c}-${version}.crate`), '-C', dir]);
    found[c] = join(dir, `${c}-${version}`);
  }
  return { found, targetDir: meta.target_directory };
}

/** What cargo sees in every scenario (and in --prebuild's build): the toolchain's homes, and the
 * release profile's overrides. */
function cargoEnv() {
  return {
    CARGO_HOME: process.env.CARGO_HOME ?? join(process.env.HOME, '.cargo'),
    RUSTUP_HOME: process.env.RUSTUP_HOME ?? join(process.env.HOME, '.rustup'),
    // A release build here proves the command works, not what LTO makes of it (the C stage
    // builds and tests the shipped LTO profile): without FULL=1, the blocks' release builds
    // (`cargo run --release`, `cargo install`) skip LTO and use 16 codegen units (issue #55),
    // and optimise nothing (opt-level 0: what a block prints does not depend on it; the CLI's
    // 106 crates then cost the docs-build stage 134 s of CPU, where opt-level 3 took 414 s in
    // the run of 2026-11-29). Debug assertions and overflow checks stay off, as in
    // the release profile: the blocks still run release code, only unoptimised.
    // The C library's profile (c-release, which inherits release) stays as it ships: its blocks'
    // `bash bindings/c/install.sh` then finds the C stage's build of it in target/, where with
    // release's overrides inherited it compiled the library and its 94 dependencies again at
    // opt-level z.
    ...(process.env.FULL === '1'
      ? {}
      : {
          CARGO_PROFILE_RELEASE_LTO: 'false',
          CARGO_PROFILE_RELEASE_CODEGEN_UNITS: '16',
          CARGO_PROFILE_RELEASE_OPT_LEVEL: '0',
          CARGO_PROFILE_C_RELEASE_LTO: 'true',
          CARGO_PROFILE_C_RELEASE_CODEGEN_UNITS: '1',
        }),
  };
}

/** The release build of the CLI that README's try block (`cargo run --release -p polar-license-cli
 * -- demo`) and the `cargo install --locked --path crates/cli` blocks make: what --prebuild builds,
 * and how a block's log shows it was built again. */
const PREBUILD = ['build', '--release', '-p', 'polar-license-cli'];
const BUILDS_CLI = /cargo (run|build) --release -p polar-license-cli|cargo install [^\n]*--path crates\/cli/;
const REBUILT_CLI = /Compiling polar-license-cli v/;
/** Written by a --prebuild that succeeded (and removed when one starts). */
const PREBUILT = join(OUT, 'prebuilt');

/** `--prebuild`: that build, made ahead. scripts/test.sh runs it in the background at niceness 19
 * from the run's start (the docs-build stage), so that those blocks, run as written in the docs
 * stage, find it fresh: the same target directory, the same profile and overrides (cargoEnv), the
 * same package and features. A block still builds whatever is not fresh; a failure here is a
 * failure of those blocks too. */
function prebuildRelease() {
  const meta = JSON.parse(execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { cwd: ROOT, encoding: 'utf8' }));
  console.log(`docs-build: cargo ${PREBUILD.join(' ')} (CARGO_TARGET_DIR=${meta.target_directory}, the docs stage's overrides)`);
  mkdirSync(OUT, { recursive: true });
  rmSync(PREBUILT, { force: true });
  const started = Date.now();
  const r = spawnSync('cargo', PREBUILD, {
    cwd: ROOT,
    env: { ...process.env, ...cargoEnv(), CARGO_TARGET_DIR: meta.target_directory },
    stdio: 'inherit',
  });
  console.log(`docs-build: exit ${r.status} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (r.status !== 0) return 1;
  writeFileSync(PREBUILT, `cargo ${PREBUILD.join(' ')}\n`);
  return 0;
}

/** The `electron` stand-in, packed into target/docs/; returns the tarball's path. */
function packStandIn() {
  const name = execFileSync('npm', ['pack', '--silent', '--pack-destination', OUT, join(ROOT, 'tests', 'docs', 'electron-standin')], {
    encoding: 'utf8',
  });
  return join(OUT, name.trim().split('\n').pop());
}

/** The Tauri plugin's guest package (`@polar-license/tauri`, not published yet), packed into
 * target/docs/; returns the tarball's path. */
function packTauriGuest() {
  const name = execFileSync('npm', ['pack', '--silent', '--pack-destination', OUT, join(ROOT, 'crates', 'tauri', 'guest-js')], {
    encoding: 'utf8',
  });
  return join(OUT, name.trim().split('\n').pop());
}

function npmTarballs() {
  const dir = join(ROOT, 'target', 'npm');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.tgz')).map((f) => join(dir, f));
}

/** One block as typed into the scenario's terminal: it starts where the last one left off
 * (`state`: its directory and exported variables, saved when it exits), or in `cwd`. */
function runShell(code, cwd, env, log, background, state) {
  const q = (p) => `'${p.replaceAll("'", "'\\''")}'`;
  const script =
    `if [ -f ${q(state)}.env ]; then . ${q(state)}.env; cd "$(cat ${q(state)}.cwd)"; fi\n` +
    (cwd ? `cd ${q(cwd)}\n` : '') +
    `trap 'export -p > ${q(state)}.env; pwd > ${q(state)}.cwd' EXIT\n` +
    code;
  return new Promise((resolvePromise) => {
    const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], {
      cwd: dirname(state),
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let done = false;
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolvePromise({ ...result, stdout, stderr, pid: child.pid });
    };
    child.stdout.on('data', (d) => {
      stdout += d;
      appendFileSync(log, d);
      if (background && stdout.includes('\n')) finish({ code: 0, started: true });
    });
    child.stderr.on('data', (d) => {
      stderr += d;
      appendFileSync(log, d);
    });
    // Resolved when bash exits: a process it left in the background may hold the pipes open.
    child.on('exit', (code, signal) => setTimeout(() => finish({ code: code ?? 128, signal }), 50));
    child.on('error', (e) => finish({ code: 127, error: String(e) }));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
      finish({ code: 124, timedOut: true });
    }, background ? 120_000 : BLOCK_TIMEOUT_MS);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Opens `url` in headless Chromium with the profile `profile` and plays the user (see above). */
async function browse(url, profile) {
  const { chromium } = createRequire(join(ROOT, 'scripts', 'npm', 'package.json'))('playwright-core');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  const errors = [];
  const lines = [];
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    let inflight = 0;
    page.on('request', () => (inflight += 1));
    page.on('requestfinished', () => (inflight -= 1));
    page.on('requestfailed', () => (inflight -= 1));
    page.on('pageerror', (e) => errors.push(String(e)));
    // The page's text once it and the network are quiet for a while.
    const settle = async () => {
      let text = null;
      for (let quiet = 0; quiet < 4; ) {
        await sleep(100);
        const now = await page.evaluate(() => document.body.innerText);
        quiet = now === text && inflight === 0 ? quiet + 1 : 0;
        text = now;
      }
      lines.push(...text.split('\n').map((l) => l.trim()).filter(Boolean));
    };
    await page.goto(url);
    await settle();
    for (const value of USER_TYPES) {
      const input = page.locator('form:visible input').first();
      if ((await input.count()) === 0) break;
      await input.fill(value);
      lines.push(`(typed) ${value}`);
      await input.press('Enter');
      await settle();
    }
    await page.reload();
    lines.push('(reloaded)');
    await settle();
  } catch (e) {
    errors.push(String(e));
  } finally {
    await context.close();
  }
  return { code: errors.length ? 1 : 0, stdout: lines.join('\n') + '\n', stderr: errors.join('\n') };
}

function killGroup(pid) {
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {}
}

async function runScenario(file, name, list, env0, crates) {
  const dir = join(WORK, slug(file), name);
  rmSync(dir, { recursive: true, force: true });
  const home = join(dir, 'home');
  mkdirSync(join(home, '.local', 'bin'), { recursive: true });
  mkdirSync(join(dir, '.cargo'), { recursive: true });
  symlinkSync(ROOT, join(dir, 'polar-license'));
  writeFileSync(
    join(dir, '.cargo', 'config.toml'),
    '# Written by tests/docs/run.mjs: the crates as `cargo package` packs them.\n[patch.crates-io]\n' +
      Object.entries(crates.found)
        .map(([c, path]) => `${c} = { path = ${JSON.stringify(path)} }\n`)
        .join(''),
  );
  const log = join(OUT, slug(file), `${name}.log`);
  mkdirSync(dirname(log), { recursive: true });
  writeFileSync(log, '');
  const env = {
    ...env0,
    HOME: home,
    CARGO_INSTALL_ROOT: join(home, '.cargo'),
    CARGO_TARGET_DIR: crates.targetDir,
    PATH: `${join(home, '.cargo', 'bin')}:${join(home, '.local', 'bin')}:${env0.PATH}`,
  };
  const background = [];
  let last = null;
  let failure = null;
  for (const b of list) {
    const m = b.marker;
    const where = `${file}:${b.line}`;
    if (m.kind === 'file') {
      const path = join(dir, m.path);
      mkdirSync(dirname(path), { recursive: true });
      (m.append ? appendFileSync : writeFileSync)(path, b.code);
      continue;
    }
    if (m.kind === 'run') {
      appendFileSync(log, `\n$ # ${where}\n${b.code}`);
      const start = m.checkout ? join(dir, 'polar-license') : null;
      // A background command, or one run in the checkout (another terminal), gets the
      // terminal's state but leaves it as it was.
      const aside = m.background || m.checkout;
      const state = aside ? join(dir, '.terminal-aside') : join(dir, '.terminal');
      if (aside) {
        // The terminal's state, or none yet (then the scenario's directory), never what the
        // last block aside left (a checkout block's directory is not the next one's).
        for (const ext of ['.env', '.cwd']) {
          if (existsSync(join(dir, `.terminal${ext}`))) copyFileSync(join(dir, `.terminal${ext}`), `${state}${ext}`);
          else rmSync(`${state}${ext}`, { force: true });
        }
      }
      const r = await runShell(b.code, start, env, log, m.background, state);
      // Whatever a block left running (`cmd &`, or the background command) ends with the scenario.
      background.push(r.pid);
      if (m.background) {
        if (!r.started) {
          failure = `${where}: the background command printed nothing (exit ${r.code})\n${r.stderr}`;
          break;
        }
        if (!m.browse) continue;
        const page = await browse(m.browse, join(home, '.chromium'));
        appendFileSync(log, `\n# ${m.browse} in Chromium\n${page.stdout}${page.stderr}`);
        for (const pid of background.splice(background.indexOf(r.pid), 1)) killGroup(pid);
        last = page;
        if (page.code !== 0) {
          failure = `${where}: the page failed\n--- shown\n${page.stdout}--- errors\n${page.stderr}`;
          break;
        }
        continue;
      }
      last = r;
      if (r.code !== 0) {
        failure = `${where}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}\n--- stdout\n${tail(r.stdout)}--- stderr\n${tail(r.stderr)}`;
        break;
      }
      // What a sample prints is what a customer reads: no Rust Debug shape, no epoch seconds.
      const shown = internalLine(r.stdout) ?? internalLine(r.stderr);
      if (shown) {
        failure = `${where}: the output shows internals, ${shown}`;
        break;
      }
      continue;
    }
    if (m.kind === 'output') {
      if (!outputMatches(b.code, last.stdout)) {
        failure = `${where}: the output differs\n--- the block\n${b.code}--- printed\n${last.stdout}`;
        break;
      }
    }
  }
  for (const pid of background) killGroup(pid);
  // Under scripts/test.sh, the docs-build stage built the CLI these blocks build (when it
  // succeeded: its mark): building it again means their flags and its differ (cargoEnv,
  // PREBUILD), its minutes back in this stage.
  if (!failure && process.env.DOCS_PREBUILT === '1' && existsSync(PREBUILT) && list.some((b) => b.marker.kind === 'run' && BUILDS_CLI.test(b.code))) {
    if (REBUILT_CLI.test(readFileSync(log, 'utf8'))) {
      failure = `${file}: ${name} compiled polar-license-cli again, which the docs-build stage had built (cargo ${PREBUILD.join(' ')}): the blocks' flags and tests/docs/run.mjs's PREBUILD or cargoEnv differ (see ${log})`;
    }
  }
  return failure;
}

function tail(text, lines = 40) {
  const all = text.split('\n');
  return all.slice(-lines).join('\n') + (text.endsWith('\n') ? '' : '\n');
}

async function main() {
  if (prebuild) return prebuildRelease();
  const targets = files.length ? files : markdownFiles();
  const plan = targets.map((f) => ({ file: f, ...scenarios(f) }));
  let passed = 0;
  let failed = 0;
  const failures = [];
  for (const p of plan) {
    for (const e of p.errors) {
      failures.push(e);
    }
    if (p.errors.length) failed += 1;
  }
  // The rule that keeps internals out of the samples' output, tried first on known lines.
  const misjudged = selfCheck();
  if (misjudged.length) {
    failed += 1;
    failures.push(`tests/docs/internals.mjs judges wrong:\n${misjudged.join('\n')}`);
  }
  // Issue #79: each install line shows the published form, and the registry stage runs it.
  const install = installLines();
  if (install.problems.length) {
    failed += 1;
    failures.push(`install lines (tests/docs/install-lines.mjs):\n${install.problems.join('\n')}`);
  } else if (!listOnly && !only) {
    passed += 1;
    console.log(`ok - install lines: ${install.found.length}, each published form run by the registry stage`);
  }
  // Issue #79: README's size rows are scripts/size.sh's figures (scripts/readme-sizes.mjs), checked
  // when the npm package is built (the wasm stage builds it before this one).
  if (!listOnly && !only) {
    if (existsSync(join(ROOT, 'target', 'npm', 'pkg', 'polar_license_bg.wasm'))) {
      const sizes = spawnSync('node', [join(ROOT, 'scripts', 'readme-sizes.mjs'), '--check'], { cwd: ROOT, encoding: 'utf8' });
      if (sizes.status === 0) {
        passed += 1;
        console.log('ok - README.md size rows: the figures scripts/size.sh measures');
      } else {
        failed += 1;
        failures.push(`README.md's size rows (scripts/readme-sizes.mjs --check):\n${sizes.stdout}${sizes.stderr}`);
      }
    } else {
      console.log('not run: README.md size rows (no target/npm/pkg: bash scripts/build-npm.sh)');
    }
  }
  if (listOnly) {
    for (const p of plan) {
      for (const [name, list] of p.list) console.log(`${p.file}: ${name} (${list.length} blocks)`);
      for (const s of p.skipped) console.log(`not run: ${s}`);
    }
    for (const f of failures) console.log(`error: ${f}`);
    return failures.length ? 1 : 0;
  }
  mkdirSync(OUT, { recursive: true });
  const crates = packCrates();
  const registry = await startRegistry([...npmTarballs(), packStandIn(), packTauriGuest()]);
  const env0 = {
    ...process.env,
    npm_config_registry: registry.url,
    npm_config_cache: join(OUT, 'npm-cache'),
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
    ELECTRON_STANDIN_TYPE: USER_TYPES.join('|'),
    PYTHONUNBUFFERED: '1',
    // `pip install polar-license==0.1.0` resolves to the wheel scripts/test-python.sh built
    // (the python stage runs before this one); other packages come from PyPI, cached here.
    PIP_FIND_LINKS: join(ROOT, 'target', 'python', 'wheels'),
    PIP_CACHE_DIR: join(OUT, 'pip-cache'),
    PIP_DISABLE_PIP_VERSION_CHECK: '1',
    ...cargoEnv(),
  };
  for (const p of plan) {
    for (const [name, list] of p.list) {
      const id = `${p.file}: ${name}`;
      if (only && !id.includes(only)) continue;
      const started = Date.now();
      const failure = await runScenario(p.file, name, list, env0, crates);
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      if (failure) {
        failed += 1;
        failures.push(failure);
        console.log(`not ok - ${id} (${secs} s)`);
      } else {
        passed += 1;
        console.log(`ok - ${id} (${secs} s)`);
      }
    }
  }
  await registry.close();
  const skipped = plan.flatMap((p) => p.skipped);
  if (skipped.length) {
    console.log(`\n${skipped.length} blocks shown, not run:`);
    for (const s of skipped) console.log(`  ${s}`);
  }
  for (const f of failures) console.log(`\n${f}`);
  console.log(`\ndocs: ${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

process.exitCode = await main();
