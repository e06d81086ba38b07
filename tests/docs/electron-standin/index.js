'use strict';
// A stand-in for the `electron` package, for the docs' scenarios (tests/docs/run.mjs): the
// main process, the preload and the page's scripts all run in this one node process.
//
//   app            getPath('userData') (~/.config/<name>), whenReady(), quit(), on()
//   ipcMain        handle(channel, fn)            } wired to each other: arguments and answers are
//   ipcRenderer    invoke(channel, ...args)       } structured clones; a handler's rejection
//                                                   reaches the renderer as Electron's does: an
//                                                   Error with only a message
//   contextBridge  exposeInMainWorld(name, api)   (sets window[name])
//   net            fetch                          (the global fetch)
//   BrowserWindow  new BrowserWindow({ webPreferences: { preload } }), loadFile(html): runs the
//                  preload, then the page's <script src> files, over a minimal DOM
//                  (document.getElementById; an element's `value`, `hidden`, `textContent`,
//                  addEventListener). Every `textContent` set is printed: `[#id] text`.
//
// The user: when the page is idle with a visible <form>, the stand-in types the next value of
// $ELECTRON_STANDIN_TYPE (values separated by `|`) into the form's first <input> and submits it;
// when the page is idle with no visible form, or nothing is left to type, the app quits.
const { readFileSync } = require('node:fs');
const { dirname, join, resolve } = require('node:path');
const { homedir } = require('node:os');

let appDir = process.cwd();
let inflight = 0;
const handlers = new Map();
const toType = (process.env.ELECTRON_STANDIN_TYPE ?? '').split('|').filter(Boolean);

function appName() {
  try {
    const manifest = JSON.parse(readFileSync(join(appDir, 'package.json'), 'utf8'));
    return manifest.productName ?? manifest.name ?? 'Electron';
  } catch {
    return 'Electron';
  }
}

const app = {
  getPath(name) {
    if (name === 'userData') return join(homedir(), '.config', appName());
    if (name === 'home') return homedir();
    throw new Error(`electron stand-in: app.getPath(${JSON.stringify(name)}) is not stood in`);
  },
  getName: appName,
  whenReady: () => Promise.resolve(),
  on() {},
  quit: () => process.exit(0),
};

const ipcMain = {
  handle(channel, fn) {
    handlers.set(channel, fn);
  },
};

const ipcRenderer = {
  async invoke(channel, ...args) {
    const handler = handlers.get(channel);
    if (!handler) throw new Error(`Error invoking remote method '${channel}': No handler registered for '${channel}'`);
    inflight += 1;
    try {
      return structuredClone(await handler({ sender: {} }, ...structuredClone(args)));
    } catch (e) {
      throw new Error(`Error invoking remote method '${channel}': ${e}`);
    } finally {
      inflight -= 1;
    }
  },
};

const contextBridge = {
  exposeInMainWorld(name, api) {
    globalThis.window[name] = api;
  },
};

const net = { fetch: (...args) => globalThis.fetch(...args) };

/** A page's elements, from its HTML: id, tag, hidden. */
function elements(html) {
  const byId = new Map();
  for (const m of html.matchAll(/<(\w+)([^>]*)>/g)) {
    const id = /\bid="([^"]+)"/.exec(m[2])?.[1];
    if (!id) continue;
    let text = '';
    const listeners = [];
    byId.set(id, {
      id,
      tagName: m[1].toUpperCase(),
      hidden: /\shidden\b/.test(m[2]),
      value: '',
      listeners,
      get textContent() {
        return text;
      },
      set textContent(value) {
        text = String(value);
        console.log(`[#${id}] ${text}`);
      },
      addEventListener(type, fn) {
        listeners.push({ type, fn });
      },
    });
  }
  return byId;
}

/** Resolves when no IPC call is under way and timers had a chance to run. */
async function idle() {
  for (let quiet = 0; quiet < 3; ) {
    await new Promise((r) => setTimeout(r, 20));
    quiet = inflight === 0 ? quiet + 1 : 0;
  }
}

class BrowserWindow {
  constructor(options = {}) {
    this.preload = options.webPreferences?.preload;
  }

  async loadFile(file) {
    const path = resolve(appDir, file);
    const html = readFileSync(path, 'utf8');
    const byId = elements(html);
    globalThis.window = globalThis;
    globalThis.document = { getElementById: (id) => byId.get(id) ?? null };
    if (this.preload) require(this.preload);
    for (const m of html.matchAll(/<script[^>]*\bsrc="([^"]+)"/g)) require(resolve(dirname(path), m[1]));
    await play(byId);
  }
}

async function play(byId) {
  const all = [...byId.values()];
  for (;;) {
    await idle();
    const form = all.find((e) => e.tagName === 'FORM' && !e.hidden);
    const input = all.find((e) => e.tagName === 'INPUT');
    if (!form || !input || toType.length === 0) break;
    input.value = toType.shift();
    console.log(`[#${input.id}] (typed) ${input.value}`);
    const event = { type: 'submit', target: form, preventDefault() {} };
    await Promise.all(form.listeners.filter((l) => l.type === 'submit').map((l) => l.fn(event)));
  }
  app.quit();
}

module.exports = {
  app,
  ipcMain,
  ipcRenderer,
  contextBridge,
  net,
  BrowserWindow,
  startApp(dir) {
    appDir = dir;
  },
};
