// The three browser engines the browser suites (tests/browser) run their pages in:
//   chromium  Debian's Chromium (Blink), headless, through playwright-core;
//   firefox   Debian's Firefox ESR (Gecko), headless, through puppeteer-core over WebDriver BiDi;
//   webkit    WebKitGTK's MiniBrowser (WebKit, the engine of Safari), through WebKitWebDriver
//             (W3C WebDriver, selenium-webdriver as its client) on an Xvfb display of its own.
// `POLAR_BROWSERS=chromium,firefox` runs a subset. An engine opens pages (`open(url)`, each with
// storage of its own; `context()` gives pages that share theirs) with the few verbs the suites
// use: waitFor (a function true in the page), evaluate (a function, awaited in the page),
// screenshot, close; `problems` collects the page's uncaught errors where the driver reports them
// (chromium, firefox). scripts/npm/startup.mjs times its pages with them too.
import { describe, before, after } from 'node:test';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const ENGINES = (process.env.POLAR_BROWSERS ?? 'chromium,firefox,webkit').split(',').filter(Boolean);

const CHROMIUM = '/usr/bin/chromium';
const FIREFOX = '/usr/bin/firefox-esr';
const WEBKIT_DRIVER = '/usr/bin/WebKitWebDriver';
const MINIBROWSER = '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
const TIMEOUT = 30_000;

/**
 * The engines a suite runs in. A suite whose failures can differ by engine (storage: Web Storage,
 * IndexedDB, Web Locks; WebCrypto and Ed25519; fetch's aborts and timeouts; the package's loading)
 * runs in all of ENGINES. The others (`engineSpecific: false`: the gate's states and the rotation
 * day, whose every engine call is one those suites make) run in Chromium alone by default, and in
 * all of ENGINES with FULL=1 or when POLAR_BROWSERS names the engines.
 */
function enginesFor(engineSpecific) {
  if (engineSpecific || process.env.FULL === '1' || process.env.POLAR_BROWSERS) return ENGINES;
  return ENGINES.filter((engine) => engine === 'chromium');
}

/**
 * A `describe` per engine of ENGINES (Chromium's alone by default for a suite not
 * `engineSpecific`: enginesFor), in which `body(engine, browser)` declares its tests;
 * `browser` is the engine (`open`, `version`), launched before those tests (and before the
 * hooks `body` adds) and closed after them (and after those hooks).
 */
export function eachEngine(tools, body, { engineSpecific = true } = {}) {
  for (const engine of enginesFor(engineSpecific)) {
    describe(engine, () => {
      const browser = {};
      before(async () => Object.assign(browser, await launchEngine(engine, tools)));
      body(engine, browser);
      // After the hooks `body` added (its pages are closed before their browser).
      after(() => browser.close?.());
    });
  }
}

/** Starts `engine` ('chromium' | 'firefox' | 'webkit'); `tools` is scripts/npm/node_modules. */
export async function launchEngine(engine, tools) {
  const require = createRequire(join(tools, '..', 'package.json'));
  if (engine === 'chromium') return chromium(require('playwright-core').chromium);
  if (engine === 'firefox') return firefox(require('puppeteer-core'));
  if (engine === 'webkit') return webkit(require('selenium-webdriver'));
  throw new Error(`unknown engine ${engine} (POLAR_BROWSERS takes chromium, firefox, webkit)`);
}

/** `page.waitFor(fn, arg)` with the page's text in the error when it never came true. */
async function waited(what, wait, bodyText) {
  try {
    await wait();
  } catch (err) {
    let body = '';
    try {
      body = await bodyText();
    } catch {}
    throw new Error(`${what}: ${err.message}; the page says: ${JSON.stringify(body.slice(0, 500))}`);
  }
}

/**
 * A page of playwright or puppeteer (their verbs agree but for waitForFunction's arguments,
 * which `wait(fn, arg, timeout)` adapts), opened at `url`; `close` ends it.
 */
async function driven(page, url, wait, close) {
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  await page.goto(url);
  const bodyText = () => page.evaluate(() => document.body?.innerText ?? '');
  return {
    problems,
    waitFor: (fn, arg, timeout = TIMEOUT) => waited('waitFor', () => wait(fn, arg, timeout), bodyText),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    // `options`: playwright's and puppeteer's (a `clip`); WebKit's driver takes none.
    screenshot: (path, options = {}) => page.screenshot({ path, ...options }),
    close,
  };
}

/**
 * The engine of a playwright or puppeteer `browser` (their contexts and pages agree): `open(url)`
 * a page in a context of its own, `context()` pages that share one. `newContext()` makes a
 * context; `wait(page, fn, arg, timeout)` is the driver's waitForFunction.
 */
function contexts(browser, version, newContext, wait) {
  const pageIn = async (context, url) => {
    const page = await context.newPage();
    return driven(page, url, (fn, arg, timeout) => wait(page, fn, arg, timeout), () => page.close());
  };
  return {
    version,
    async open(url) {
      // A context of its own per page: storage not shared.
      const context = await newContext();
      const page = await pageIn(context, url);
      return { ...page, close: () => context.close() };
    },
    async context() {
      const context = await newContext();
      return { open: (url) => pageIn(context, url), close: () => context.close() };
    },
    close: () => browser.close(),
  };
}

async function chromium(type) {
  const browser = await type.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  return contexts(
    browser,
    browser.version(),
    () => browser.newContext(),
    (page, fn, arg, timeout) => page.waitForFunction(fn, arg, { timeout }),
  );
}

async function firefox(puppeteer) {
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    // A closed network: nothing of Firefox's own to fetch at start.
    extraPrefsFirefox: {
      'app.update.enabled': false,
      'browser.safebrowsing.malware.enabled': false,
      'browser.safebrowsing.phishing.enabled': false,
      'datareporting.policy.dataSubmissionEnabled': false,
      'extensions.update.enabled': false,
      'network.captive-portal-service.enabled': false,
      'network.connectivity-service.enabled': false,
      'services.settings.server': 'http://127.0.0.1:9/',
      'app.normandy.enabled': false,
    },
  });
  return contexts(
    browser,
    await browser.version(),
    () => browser.createBrowserContext(),
    (page, fn, arg, timeout) => page.waitForFunction(fn, { timeout, polling: 50 }, arg),
  );
}

function freePort() {
  return new Promise((ok, ko) => {
    const s = createServer();
    s.on('error', ko);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** Xvfb on the first free display it finds (`-displayfd`); resolves with `:N` and the process. */
function xvfb() {
  return new Promise((ok, ko) => {
    const proc = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1280x1024x24', '-nolisten', 'tcp'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    let err = '';
    proc.stderr.on('data', (d) => (err += d));
    proc.on('error', ko);
    proc.on('exit', (code) => ko(new Error(`Xvfb exited (${code}): ${err.slice(-300)}`)));
    let out = '';
    proc.stdio[3].on('data', (d) => {
      out += d;
      if (out.includes('\n')) ok({ display: `:${out.trim()}`, proc });
    });
  });
}

async function webkit(webdriver) {
  const { display, proc: xserver } = await xvfb();
  const port = await freePort();
  const driver = spawn(WEBKIT_DRIVER, [`--port=${port}`], { stdio: 'ignore', env: { ...process.env, DISPLAY: display } });
  const base = `http://127.0.0.1:${port}`;
  // Once the driver is gone a session's quit would wait for it forever: a page closed after
  // its browser is already closed.
  let stopped = false;
  const stop = () => {
    stopped = true;
    driver.kill();
    xserver.kill();
  };
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/status`)).ok) break;
      } catch {}
      if (i === 100) throw new Error(`WebKitWebDriver did not answer on ${base}`);
      await sleep(100);
    }
  } catch (err) {
    stop();
    throw err;
  }
  const capabilities = {
    browserName: 'MiniBrowser',
    'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] },
  };
  const session = async () => {
    const d = await new webdriver.Builder().usingServer(base).withCapabilities(capabilities).build();
    await d.manage().setTimeouts({ script: TIMEOUT });
    return d;
  };
  let version;
  try {
    const first = await session();
    version = (await first.getCapabilities()).get('browserVersion');
    await first.quit();
  } catch (err) {
    stop();
    throw err;
  }
  /** The page `d` shows now, loaded from `url`; `close` ends it. */
  const pageOf = async (d, url, close) => {
    await d.get(url);
    const run = (fn, arg) => d.executeScript(`return (${fn})(arguments[0]);`, arg);
    const bodyText = () => d.executeScript('return document.body ? document.body.innerText : "";');
    return {
      problems: [],
      waitFor: (fn, arg, timeout = TIMEOUT) =>
        waited(
          'waitFor',
          async () => {
            const end = Date.now() + timeout;
            while (!(await run(fn, arg))) {
              if (Date.now() > end) throw new Error(`not true within ${timeout} ms: ${fn}`);
              await sleep(50);
            }
          },
          bodyText,
        ),
      async evaluate(fn, arg) {
        const got = await d.executeAsyncScript(
          `const done = arguments[arguments.length - 1];
           Promise.resolve().then(() => (${fn})(arguments[0])).then((ok) => done({ ok }), (e) => done({ error: String(e) }));`,
          arg,
        );
        if (got && 'error' in got) throw new Error(`in the page: ${got.error}`);
        return got?.ok;
      },
      async screenshot(path) {
        await writeFile(path, Buffer.from(await d.takeScreenshot(), 'base64'));
      },
      close,
    };
  };
  const quit = async (d) => {
    if (!stopped) await d.quit();
  };
  return {
    version: `WebKitGTK ${version}`,
    async open(url) {
      // A session (a MiniBrowser) of its own per page: storage not shared.
      const d = await session();
      return pageOf(d, url, () => quit(d));
    },
    async context() {
      // One session: each page a new load in its window, the storage kept.
      const d = await session();
      return { open: (url) => pageOf(d, url, async () => {}), close: () => quit(d) };
    },
    close: async () => stop(),
  };
}

