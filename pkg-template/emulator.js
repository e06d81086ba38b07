// `polar-license/emulator`: a local Polar for node (>= 18), to try the package without a Polar
// account or a network. The emulator of `polar-license emulator` (the Rust command line),
// compiled to WebAssembly (polar_license_emulator_bg.wasm, a file of its own: the default entry
// never loads it), behind a node:http server. Every answer is the Rust emulator's: the same
// status codes, bodies, errors, admin routes (`/__emulator/…`) and faults.
//
//   import { startEmulator } from 'polar-license/emulator';
//   const polar = await startEmulator();            // the demo seed, a free port on 127.0.0.1
//   new LicenseClient({ organizationId: polar.organizationId, baseUrl: polar.url });
//   await polar.close();
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Emulator, initSync } from './polar_license_emulator.js';

let loaded = false;
function load() {
  if (!loaded) {
    initSync({ module: readFileSync(new URL('./polar_license_emulator_bg.wasm', import.meta.url)) });
    loaded = true;
  }
}

/** How long a `hang` fault holds a connection at most (as the Rust emulator). */
const HANG_MS = 60_000;
const OPTION_NAMES = [
  'rateLimit',
  'rateLimitBlockMs',
  'sandbox',
  'apiVersion',
  'apiVersions',
  'tokenBudget',
  'tokenWindowMs',
  'webhookTimeScale',
  'webhookTimeoutMs',
];

const now = () => [Date.now(), performance.now()];

function seedText(seed) {
  if (seed === undefined || seed === null) return undefined;
  if (typeof seed === 'string') return seed;
  if (typeof seed === 'object') return JSON.stringify(seed);
  throw new TypeError('seed must be a seed object, its JSON text, or undefined (the demo seed)');
}

function noBody(status) {
  return (status >= 100 && status < 200) || status === 204 || status === 304;
}

/**
 * Starts a local Polar on `host:port` (port 0: a free one). `seed`: a seed object (or its JSON
 * text) as `polar-license emulator --seed FILE` reads it; the demo seed when left out.
 * @param {import('./emulator.d.ts').EmulatorOptions} [options]
 * @returns {Promise<import('./emulator.d.ts').RunningEmulator>}
 */
export async function startEmulator(options = {}) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('startEmulator takes an options object');
  }
  const { port = 0, host = '127.0.0.1', seed } = options;
  const extra = {};
  for (const name of Object.keys(options)) {
    if (OPTION_NAMES.includes(name)) extra[name] = options[name];
    else if (!['port', 'host', 'seed'].includes(name)) {
      throw new TypeError(`startEmulator: unknown option ${name}`);
    }
  }
  load();
  const emulator = new Emulator(seedText(seed), JSON.stringify(extra), randomBytes(32), ...now());
  const sockets = new Set();
  const timers = new Set();
  let closed = false;

  const later = (ms, fn) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
    return t;
  };

  // Webhooks: the core says which attempts are due; each goes out with fetch, one in flight
  // per endpoint (the core keeps each endpoint's events in order), and its outcome goes back.
  let pumpTimer = null;
  function pump() {
    if (closed) return;
    const due = JSON.parse(emulator.webhooksDue(...now()));
    for (const attempt of due) deliver(attempt);
    const at = emulator.webhooksNextAt();
    if (pumpTimer !== null) {
      clearTimeout(pumpTimer);
      timers.delete(pumpTimer);
      pumpTimer = null;
    }
    if (at !== undefined) {
      pumpTimer = later(Math.max(0, at - performance.now()), () => {
        pumpTimer = null;
        pump();
      });
    }
  }
  async function deliver(attempt) {
    let status = 0;
    let body = '';
    let error = '';
    try {
      const response = await fetch(attempt.url, {
        method: 'POST',
        headers: attempt.headers,
        body: attempt.body,
        redirect: 'manual',
        signal: AbortSignal.timeout(attempt.timeoutMs),
      });
      body = await response.text();
      status = response.status;
    } catch (e) {
      status = 0;
      error = String(e?.message ?? e);
    }
    if (closed) return;
    emulator.webhookFinished(attempt.id, status, body, error, ...now());
    pump();
  }

  function send(req, res, answer) {
    const head = answer.headers;
    const status = answer.status;
    const delivery = answer.delivery;
    let length = answer.body.length;
    if (delivery === 'truncated' || delivery === 'huge') length = answer.amount;
    if (!noBody(status)) head.push('content-length', String(length));
    if (answer.close) head.push('connection', 'close');
    res.sendDate = false;
    res.writeHead(status, head);
    const body = Buffer.from(answer.body);
    if (delivery === 'truncated') {
      res.write(body, () => res.socket?.destroy());
    } else if (delivery === 'slow_body' && req.method !== 'HEAD' && body.length > 0) {
      slowBody(res, body, answer.amount);
    } else if (delivery === 'huge' && req.method !== 'HEAD') {
      hugeBody(res, answer.amount);
    } else {
      res.end(body);
    }
  }

  function stream(res, run) {
    emulator.streamStarted();
    let ended = false;
    const end = () => {
      if (!ended) {
        ended = true;
        emulator.streamEnded();
      }
    };
    res.on('close', end);
    run(end);
  }

  function slowBody(res, body, ms) {
    stream(res, (end) => {
      let i = 0;
      const next = () => {
        if (res.destroyed || closed) return end();
        res.write(body.subarray(i, i + 1));
        i += 1;
        if (i < body.length) later(ms, next);
        else {
          res.end();
          end();
        }
      };
      later(ms, next);
    });
  }

  function hugeBody(res, bytes) {
    const [prefix, fill, suffix] = bytes >= 8 ? ['{"p":"', bytes - 8, '"}'] : ['', bytes, ''];
    stream(res, (end) => {
      const chunk = Buffer.alloc(64 * 1024, 'x');
      let left = fill;
      res.write(prefix);
      const pump = () => {
        while (left > 0) {
          if (res.destroyed || closed) return end();
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(chunk.subarray(0, n))) return res.once('drain', pump);
        }
        res.end(suffix);
        end();
      };
      pump();
    });
  }

  function answer(req, res, body) {
    const args = [
      req.method,
      req.url,
      req.rawHeaders,
      body,
      req.socket.remoteAddress ?? '127.0.0.1',
    ];
    const first = emulator.handle(...args, ...now());
    switch (first.delivery) {
      case 'close':
        req.socket.destroy();
        return;
      case 'hang':
        later(HANG_MS, () => req.socket.destroy());
        return;
      case 'delay':
        later(first.amount, () => {
          if (closed || req.socket.destroyed) return;
          send(req, res, emulator.resume(...args, ...now()));
        });
        return;
      default:
        send(req, res, first);
    }
  }

  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        answer(req, res, Buffer.concat(chunks));
        pump();
      } catch (e) {
        // A header node refuses to write, or a bad time: the connection closes unanswered.
        req.socket.destroy();
        if (process.env.POLAR_EMULATOR_DEBUG) console.error('polar-license emulator:', e);
      }
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const url = `http://${address.family === 'IPv6' || address.family === 6 ? `[${address.address}]` : address.address}:${address.port}`;
  const parse = (text) => (text === undefined ? undefined : JSON.parse(text));

  return {
    url,
    port: address.port,
    organizationId: emulator.organizationId(),
    keys: emulator.keys(),
    banner: emulator.banner(),
    setFault(fault) {
      emulator.setFault(fault === undefined || fault === null ? undefined : JSON.stringify(fault));
    },
    addKey(key) {
      emulator.addKey(JSON.stringify(typeof key === 'string' ? { key } : key), ...now());
      pump();
    },
    updateKey(key, update) {
      const changed = emulator.updateKey(key, JSON.stringify(update), ...now());
      pump();
      return changed;
    },
    rotateKey(key) {
      const rotated = emulator.rotateKey(key, ...now());
      pump();
      return rotated;
    },
    cycleKey(key) {
      const cycled = emulator.cycleKey(key, ...now());
      pump();
      return cycled;
    },
    setWebhookFault(fault) {
      emulator.setWebhookFault(
        fault === undefined || fault === null ? undefined : JSON.stringify(fault),
      );
    },
    tokenBudget() {
      const [calls, windowMs] = emulator.tokenBudget();
      return { calls, windowMs };
    },
    key(key) {
      return parse(emulator.key(key));
    },
    activations(key) {
      return JSON.parse(emulator.activations(key));
    },
    requestCount() {
      return emulator.requestCount();
    },
    resetRequestCount() {
      emulator.resetRequestCount();
    },
    setClockOffset(seconds) {
      emulator.setClockOffset(seconds);
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      return new Promise((resolve) => {
        server.close(() => {
          emulator.free();
          resolve();
        });
        for (const s of sockets) s.destroy();
      });
    },
  };
}
