// polar-license/relay: the seller-run relay as a Web-standard `fetch(request)` handler
// (Cloudflare Workers, Deno, Bun, node). Every decision is the Rust relay's (RelayCore, the
// same core `polar-license relay serve` runs): routes, body cap, Polar's input checks, the
// organization check, the rate limits, what counts as a grant and the lease's claims. This file
// moves bytes: the request in, Polar's answer (an async fetch) in, the answer out, and the
// lease's Ed25519 signature made by WebCrypto from a non-extractable key (the private key never
// enters the WebAssembly). The caps and timeouts (RelayCore.caps()), the client's address on
// Workers (the core's Host), and the answer when the host fails (RelayCore.failed(), with the
// core's CORS rule) are the core's too. It still holds rules that belong to the core, until
// issue #63 moves them (docs/architecture.md lists them): the store's key layout and its
// migration (storeKey, addLinks), the overlay of unsaved changes, the coalescing of failed
// saves and the values dropped after REFUSALS.

const SECRET_PREFIX = 'k4.secret.';
/** The route Polar's webhooks are delivered to (the core's WEBHOOK_ROUTE). */
const WEBHOOK_ROUTE = '/v1/webhooks/polar';

function b64urlDecode(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  try {
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

function b64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const bad = (what) =>
  new TypeError(`signingKey: ${what}: expected the one line KID=k4.secret.… that \`polar-license relay keygen\` writes`);

/**
 * Reads a signing key file's text (`KID=k4.secret.…`, as `polar-license relay keygen` writes
 * it) into a non-extractable WebCrypto Ed25519 key. Checks that the secret and the public half
 * belong together (a probe signature) so a damaged key fails here, not as leases nobody can
 * verify. Errors never contain the secret.
 */
export async function importSigningKey(text, subtle = globalThis.crypto?.subtle) {
  if (!subtle) throw new TypeError('signingKey: this runtime has no WebCrypto (crypto.subtle)');
  const line = typeof text === 'string' ? text.trim() : '';
  const eq = line.indexOf('=');
  if (eq <= 0) throw bad('no KID= before the key');
  const kid = line.slice(0, eq);
  const secret = line.slice(eq + 1);
  if (!secret.startsWith(SECRET_PREFIX)) throw bad('not a k4.secret key');
  const raw = b64urlDecode(secret.slice(SECRET_PREFIX.length));
  if (!raw || raw.length !== 64) throw bad('the key is not 64 bytes of base64url');
  const x = b64url(raw.subarray(32));
  let key;
  let verifier;
  try {
    key = await subtle.importKey('jwk', { kty: 'OKP', crv: 'Ed25519', d: b64url(raw.subarray(0, 32)), x }, { name: 'Ed25519' }, false, ['sign']);
    verifier = await subtle.importKey('raw', raw.subarray(32), { name: 'Ed25519' }, false, ['verify']);
  } catch (e) {
    throw new TypeError(`signingKey: WebCrypto refused the Ed25519 key (${e?.name ?? 'Error'})`);
  }
  const probe = new TextEncoder().encode('polar-license relay key check');
  const signature = await subtle.sign({ name: 'Ed25519' }, key, probe);
  if (!(await subtle.verify({ name: 'Ed25519' }, verifier, signature, probe))) {
    throw bad('its public half does not match its secret');
  }
  return { kid, key, publicKey: `k4.public.${x}` };
}

/** The store's key of a journal item: `e:<entry id>`, `w:<webhook id>`, `b:budget` (the
 * token budget's state: each replaces the last), and with a store read per key
 * (durableStorage) `i:<tag>|<entry id>` (an index link; `i:t:<time>|<entry id>` the time row,
 * oldest first), `n:entries` (the count), and the roster's `r:<SHA-256 of a key>` and
 * `r:phase` (its next page; 0: current). */
function storeKey(item) {
  switch (item.op) {
    case 'roster':
      return `r:${item.digest}`;
    case 'rosterPage':
      return 'r:phase';
    case 'budget':
      return 'b:budget';
    case 'count':
      return 'n:entries';
    case 'put':
    case 'delete':
      return `e:${item.id}`;
    case 'link':
    case 'unlink':
      return `i:${item.tag}|${item.id}`;
    default:
      return `w:${item.id}`;
  }
}

/** The value a journal item leaves under its key (`undefined`: the key is deleted). */
function storeValue(item) {
  switch (item.op) {
    case 'put':
      return item.entry;
    case 'budget':
      return item.state;
    case 'webhook':
      return item.at;
    case 'link':
      return 1;
    case 'count':
      return item.n;
    case 'roster':
      return item.known ? 1 : undefined;
    case 'rosterPage':
      return item.page;
    default:
      return undefined;
  }
}

/** The index tags of a stored entry (the core's own, for a store written before index links). */
const tagsOf = (entry) =>
  [entry?.license_key_id && `l:${entry.license_key_id}`, entry?.customer_id && `c:${entry.customer_id}`, entry?.key_tag].filter(
    (t) => typeof t === 'string' && t !== '',
  );

/** A stored value read while its save ended: read again in the next round. */
const SKIPPED = Symbol('skipped');

/** The time row's prefix: `i:t:<when Polar answered, 12 digits>|<entry id>` (the core's). */
const TIME_ROW = 'i:t:';
const timeKey = (entry, id) => `${TIME_ROW}${String(Math.max(0, Math.floor(Number(entry?.answered_at) || 0))).padStart(12, '0')}|${id}`;

/** Journal items with only the last of each key, in the order of those last changes. */
function latestPerKey(items) {
  const last = new Map();
  for (const item of items) {
    const key = storeKey(item);
    last.delete(key);
    last.set(key, item);
  }
  return [...last.values()];
}

/** Reads at most `limit` bytes of a body stream (the rest is cancelled). */
async function readCapped(body, limit) {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const room = limit - size;
      chunks.push(value.length > room ? value.subarray(0, room) : value);
      size += Math.min(value.length, room);
      if (size >= limit) {
        await reader.cancel().catch(() => {});
        break;
      }
    }
  } finally {
    reader.releaseLock?.();
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function toResponse(r) {
  const empty = r.status === 101 || r.status === 204 || r.status === 205 || r.status === 304;
  return new Response(empty || r.body.length === 0 ? null : r.body, { status: r.status, headers: r.headers });
}

const ONLY_WORKERS = () => globalThis.navigator?.userAgent === 'Cloudflare-Workers';

/**
 * The relay's own jobs between requests, one loop over the core's background machine: `poll`
 * says the next (a `GET` of Polar for the roster or the reconcile, a load of what a read
 * touches in a paged store, a page of the stored keys' listing, or how long to wait) and
 * `pollAnswered` takes what it got. The core decides which job and when; this only does it.
 * One run at a time: kicked after every request (a grant webhook's refetch goes at once) and
 * when `wake`'s time comes (a Durable Object's alarm, else a timer). Returns `kick(core)`.
 */
function readsDriver({ upstreamFetch, caps, persist, wake, loaded, rows, closed }) {
  let running = null;
  let again = false;
  const clock = () => [Date.now(), performance.now()];
  const failed = (e) => (e instanceof Error ? e.message : 'error');
  // Polar's answer to a read, or why there is none (never the headers: the token).
  async function get(job) {
    try {
      const r = await upstreamFetch(job.url, { method: 'GET', headers: job.headers, redirect: 'manual', signal: AbortSignal.timeout(caps().timeoutMs) });
      return { status: r.status, headers: [...r.headers], body: await readCapped(r.body, caps().readBytes) };
    } catch (e) {
      return { error: e?.name === 'TimeoutError' ? 'timed out' : 'unreachable' };
    }
  }
  // A page of index rows (`rows(prefix, after, limit)` lists them), or why there is none.
  async function list({ prefix, after, limit }) {
    try {
      return await rows(prefix, after, limit);
    } catch (e) {
      console.error(`polar-license relay: the stored keys could not be listed for the reconcile (${failed(e)}): again in a second`);
      return { error: 'unlisted' };
    }
  }
  // What the job asks for, done.
  async function does(core, job) {
    if (job.list) return rows ? list(job.list) : { error: 'no listing' };
    if (job.load) return { loaded: await loaded(job.load) };
    return get(job);
  }
  async function run(core) {
    try {
      for (let n = 0; n < caps().jobsPerRun && !closed(); n++) {
        const job = core.poll(...clock());
        if (job === null) return;
        if (job.wait !== undefined) {
          wake(job.wait);
          return;
        }
        const given = await does(core, job);
        // A token that cannot list the keys: said once (also in /healthz and the metrics).
        const warning = core.pollAnswered(job.id, given, ...clock());
        if (warning) console.warn(`polar-license relay: ${warning}`);
        // The budget's calls spent, saved as a request's are (a failed save is tried with the
        // next). Never after a load: saving trims the cache, which would let go what the
        // next job needs loaded (a cache of one entry never held a key's row and entry).
        if (job.url) await persist(core).catch(() => {});
      }
      wake(0);
    } finally {
      // What an answer applied after its loads narrowed, saved once the run ends.
      await persist(core).catch(() => {});
    }
  }
  return function kick(core) {
    // Closed (`relay.close()`): no new run; the run under way, if any, to wait for.
    if (closed()) return running ?? Promise.resolve();
    again = true;
    running ??= (async () => {
      try {
        while (again && !closed()) {
          again = false;
          await run(core);
        }
      } catch (e) {
        console.error(`polar-license relay: the relay's reads of Polar stopped (${failed(e)}): again with the next request`);
      } finally {
        running = null;
      }
    })();
    return running;
  };
}

/** `wake(ms)` by a timer (a host without a Durable Object's alarm): one pending at a time,
 * never keeping a node process alive; `wake.stop()` clears it for good (`relay.close()`). */
function timerWake(kick) {
  let timer = null;
  let stopped = false;
  const wake = (ms) => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (stopped) return;
    timer = setTimeout(() => {
      timer = null;
      kick();
    }, Math.min(ms, 2 ** 31 - 1));
    timer?.unref?.();
  };
  wake.stop = () => {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    timer = null;
  };
  return wake;
}

/**
 * The relay's options, checked once: the core (RelayCore) checks the rest and names the field.
 * @returns the RelayCore config without the signing key
 */
function coreConfig(options, signer) {
  const config = {
    accessToken: options.accessToken,
    kid: signer.kid,
    publicKey: signer.publicKey,
  };
  for (const name of ['baseUrl', 'server', 'leaseDays', 'organizationId', 'perIp', 'perKey', 'clientIpHeader', 'maxBodyBytes', 'corsOrigins', 'breakerFailures', 'breakerOpenFor', 'webhookSilence', 'metricsPath', 'metricsToken', 'store']) {
    if (options[name] !== undefined && options[name] !== null) config[name] = options[name];
  }
  return config;
}

/**
 * Binds the handler to a way of loading the WebAssembly (each entry has its own: a module
 * import on Workers, a file read on node).
 * @param {() => Promise<Function> | Function} load returns the RelayCore class, once loaded
 * @param {Crypto} webCrypto WebCrypto (node 18 has it only as node:crypto's `webcrypto`)
 */
export function bindRelay(load, webCrypto = globalThis.crypto) {
  return function createRelay(options = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError('createRelay: options must be an object');
    if (typeof options.accessToken !== 'string' || options.accessToken === '') {
      throw new TypeError('createRelay: accessToken (your Polar organization token) is required');
    }
    if (!options.signingKey) {
      throw new TypeError('createRelay: signingKey (the KID=k4.secret.… text of `polar-license relay keygen`, or importSigningKey()\'s result) is required');
    }
    const upstreamFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    // The core's caps and timeouts (RelayCore.caps(), read at start), `timeoutMs` the seller's.
    let limits = null;
    const caps = () => limits;
    // The socket peer each host hands the handler: Deno.serve's `info.remoteAddr`, Bun.serve's
    // `server.requestIP()`, createNodeListener's socket address; else 'unknown'. Which address
    // counts (a proxy's header, Cloudflare's on Workers) is the core's rule.
    const clientIp =
      options.clientIp ??
      ((request, second, third) =>
        third?.clientIp ??
        second?.remoteAddr?.hostname ??
        (typeof second?.requestIP === 'function' ? second.requestIP(request)?.address : null) ??
        'unknown');
    const storage = options.storage ?? null;
    if (storage && (typeof storage.load !== 'function' || typeof storage.save !== 'function')) {
      throw new TypeError('createRelay: storage must have load() and save(items)');
    }
    // A storage read per key (durableStorage's): start() reads the small global state, read()
    // entries and list() index rows as each request needs them; else load() reads it whole.
    const paged = storage?.paged === true;
    // Whether the core keeps a verdict store (`store`: an object).
    const storeOn = typeof options.store === 'object' && options.store !== null;
    let ready = null;
    let closed = false;
    const start = async () => {
      const RelayCore = await load();
      const signer =
        typeof options.signingKey === 'string' ? await importSigningKey(options.signingKey, webCrypto?.subtle) : options.signingKey;
      limits = { ...RelayCore.caps(), ...(options.timeoutMs == null ? {} : { timeoutMs: options.timeoutMs }) };
      // Workers: a host without a socket peer (the core reads Cloudflare's header for it).
      const core = new RelayCore({ ...coreConfig(options, signer), pagedStore: paged, host: ONLY_WORKERS() ? 'workers' : 'fetch' });
      if (storeOn && storage) core.restore(JSON.stringify((await (paged ? storage.start() : storage.load())) ?? []), performance.now());
      return { core, signer };
    };
    // The roster's and the reconcile's reads (store.roster, store.reconcileEvery), the core
    // deciding each: woken by the Durable Object's alarm (durableStorage's `wake`), else by a timer.
    const timer = storage?.wake ? null : timerWake(() => ready?.then(({ core }) => kickReads(core), () => {}));
    const kickReads = readsDriver({
      closed: () => closed,
      upstreamFetch,
      caps,
      persist: (core) => persist(core),
      // What a load names, read (`{entries, rows, roster, oldest}`), or null when it could not be.
      loaded: async (need) => {
        try {
          return await readNeed(need);
        } catch (e) {
          console.error(`polar-license relay: the store could not be read (${e instanceof Error ? e.message : 'error'})`);
          return null;
        }
      },
      rows: paged && typeof storage.rows === 'function' ? (prefix, after, limit) => storage.rows(prefix, after, limit) : null,
      wake: storage?.wake
        ? (ms) => storage.wake(ms).catch((e) => console.error(`polar-license relay: the alarm could not be set (${e instanceof Error ? e.message : 'error'})`))
        : timer,
    });
    // With a paged store, what was handed to `save` and not saved yet, by storage key: what a
    // read sees over the storage's own (the core drops what it cached; never a change).
    const overlay = new Map();
    let seq = 0;
    // The reads under way, each with the storage keys whose save ended while it ran: what it
    // read of them may be older than that save, so they are left for the next round to read
    // again (never loaded as absent over an entry saved meanwhile).
    const reading = new Set();
    const whileSaving = async (read) => {
      const saved = new Set();
      reading.add(saved);
      try {
        return [await read(), saved];
      } finally {
        reading.delete(saved);
      }
    };
    // The values of `keys`, what was handed to `save` over the storage's; `SKIPPED` for a key
    // whose save ended while it was read.
    const readKeys = async (keys) => {
      const [stored, saved] = await whileSaving(() => storage.read(keys.filter((k) => !overlay.has(k))));
      return keys.map((k) => (overlay.has(k) ? overlay.get(k).value : saved.has(k) ? SKIPPED : stored.get(k)));
    };
    const readEntries = async (ids) =>
      (await readKeys(ids.map((id) => `e:${id}`))).flatMap((entry, i) =>
        entry === SKIPPED ? [] : [entry === undefined ? { op: 'delete', id: ids[i] } : { op: 'put', id: ids[i], entry }],
      );
    // The roster's digests (`r:<digest>`): [digest, stored] for those read.
    const readRoster = async (digests) =>
      (await readKeys(digests.map((d) => `r:${d}`))).flatMap((value, i) => (value === SKIPPED ? [] : [[digests[i], value !== undefined]]));
    const readRow = async (tag) => {
      const prefix = `i:${tag}|`;
      const [listed, saved] = await whileSaving(() => storage.list(prefix));
      if ([...saved].some((k) => k.startsWith(prefix))) return null;
      const ids = new Set(listed.map((k) => k.slice(prefix.length)));
      for (const [k, { value }] of overlay) {
        if (!k.startsWith(prefix)) continue;
        if (value === undefined) ids.delete(k.slice(prefix.length));
        else ids.add(k.slice(prefix.length));
      }
      return [tag, [...ids]];
    };
    // With the store full: the time row's first `n` keys (its oldest entries), each after
    // TIME_ROW; null when a save ended meanwhile (read again).
    const readOldest = async (n) => {
      if (n === 0) return undefined;
      if (typeof storage.oldest !== 'function') return [];
      const [listed, saved] = await whileSaving(() => storage.oldest(n));
      if ([...saved].some((k) => k.startsWith(TIME_ROW))) return null;
      return listed
        .filter((k) => !overlay.has(k))
        .map((k) => k.slice(TIME_ROW.length));
    };
    // What a load names (`{entries, tags, roster, oldest}`), read: as `give` and `pollAnswered` take it (`{loaded}`).
    const readNeed = async (need) => {
      const [entries, rows, roster, oldest] = await Promise.all([
        readEntries(need.entries),
        Promise.all(need.tags.map(readRow)),
        readRoster(need.roster ?? []),
        readOldest(need.oldest ?? 0),
      ]);
      return { entries: JSON.stringify(entries), rows: JSON.stringify(rows.filter(Boolean)), roster: JSON.stringify(roster), oldest: oldest ? JSON.stringify(oldest) : undefined };
    };
    // The store's changes are saved in order, and every answer waits for a save that holds
    // its own. A save that fails keeps its items for the next one (tried again, in order) and
    // fails only the answers waiting on it: never a later request.
    let unsaved = [];
    let saving = Promise.resolve();
    const persist = (core) => save(core.takeJournal());
    // Saves journal items (JSON, as the core gives them).
    const save = (journal) => {
      if (!storeOn || !storage) return Promise.resolve();
      const taken = JSON.parse(journal);
      if (paged) {
        for (const item of taken) {
          item.seq = ++seq;
          overlay.set(storeKey(item), { value: storeValue(item), seq: item.seq });
        }
      }
      unsaved.push(...taken);
      const run = saving.then(async () => {
        if (unsaved.length === 0) return;
        const batch = unsaved;
        unsaved = [];
        try {
          // A storage may name values it refused for good (`durableStorage`: past its size
          // limit): dropped and logged once, never tried again with every later save (which
          // would fail each of them, and every webhook answered meanwhile).
          const refused = await storage.save(batch);
          for (const [key, why] of Array.isArray(refused) ? refused : []) {
            console.error(`polar-license relay: the storage refused ${String(key).slice(0, 18)}… for good (${why}): dropped, not tried again`);
          }
          for (const item of batch) {
            const key = storeKey(item);
            if (overlay.get(key)?.seq === item.seq) overlay.delete(key);
            for (const saved of reading) saved.add(key);
          }
        } catch (e) {
          // Kept to be tried again, the last change of each key only (a storage that keeps
          // failing holds no more than the store itself).
          unsaved = latestPerKey(batch.concat(unsaved));
          throw e;
        }
      });
      saving = run.catch(() => {});
      return run;
    };
    // Single flight: the calls to Polar under way, by flight; a request of the same entry
    // waits for the one that leads it (the core names both: `send`'s `leads`, a wait's `flight`).
    const flights = new Map();
    const random16 = () => webCrypto.getRandomValues(new Uint8Array(16));

    /** `promise` settled within `ms` (true), or not (false). */
    const settlesWithin = (promise, ms) => {
      let timer;
      const late = new Promise((resolve) => (timer = setTimeout(() => resolve(false), ms)));
      return Promise.race([Promise.resolve(promise).then(() => true, () => true), late]).finally(() => clearTimeout(timer));
    };

    /** Polar's answer to the core's call, or why there is none (never its headers: the token). */
    async function call(send) {
      try {
        const r = await upstreamFetch(send.url, {
          method: send.method,
          headers: send.headers,
          body: send.body,
          redirect: 'manual',
          signal: AbortSignal.timeout(limits.timeoutMs),
        });
        return { status: r.status, headers: [...r.headers], body: await readCapped(r.body, limits.upstreamBytes) };
      } catch (e) {
        return { error: e?.name === 'TimeoutError' ? 'timeout' : 'connect' };
      }
    }

    /** The lease's Ed25519 signature by WebCrypto (empty when it cannot sign: the core answers
     * without a lease). */
    async function sign(signer, bytes) {
      try {
        return new Uint8Array(await webCrypto.subtle.sign({ name: 'Ed25519' }, signer.key, bytes));
      } catch (e) {
        console.error(`polar-license relay: WebCrypto could not sign the lease (${e?.name ?? 'Error'}): answering without one`);
        return new Uint8Array(0);
      }
    }

    /**
     * One request, driven: the core's exchange (`start`) says what it needs next (`want`) and
     * is given what came of it (`give`); every decision is the core's (the operator's routes,
     * the head's refusals, the limits, the store, the waits for another check's call, the
     * stale answer, the lease, a webhook refused when its change is not saved). Resolves with
     * the answer; a call that goes on past a stale answer is kept running by `ctx.waitUntil`.
     */
    function drive(core, signer, request, head, ctx) {
      const id = core.start(head);
      let respond;
      let refuse;
      const answer = new Promise((resolve, reject) => ((respond = resolve), (refuse = reject)));
      let answered = false;
      // The flight this request leads, ended when the core says it landed (or the loop ends).
      const led = new Map();
      const land = (flight) => {
        const mine = led.get(flight);
        if (!mine) return;
        if (flights.get(flight) === mine.landing) flights.delete(flight);
        mine.end();
        led.delete(flight);
      };
      const run = (async () => {
        let upstream = null;
        let given;
        for (;;) {
          if (given !== undefined) core.give(id, given);
          given = undefined;
          const need = core.want(id, Date.now(), performance.now(), random16());
          if (need.respond) {
            answered = true;
            respond(toResponse(need.respond));
          }
          if (need.done) return;
          if (need.body !== undefined) {
            given = { body: await readCapped(request.body, need.body) };
          } else if (need.load) {
            try {
              given = { loaded: await readNeed(need.load) };
            } catch (e) {
              console.error(`polar-license relay: the store could not be read (${e instanceof Error ? e.message : 'error'})`);
              given = { loaded: null };
            }
          } else if (need.flight !== undefined) {
            const flight = flights.get(need.flight);
            if (need.patience === undefined) {
              await flight;
              given = { landed: true };
            } else {
              given = (await settlesWithin(flight, need.patience)) ? { landed: true } : { patience: true };
            }
          } else if (need.send) {
            if (need.leads !== undefined) {
              let end;
              const landing = new Promise((resolve) => (end = resolve));
              flights.set(need.leads, landing);
              led.set(need.leads, { landing, end });
            }
            upstream = call(need.send);
            given = need.patience === undefined || (await settlesWithin(upstream, need.patience)) ? { upstream: await upstream } : { patience: true };
          } else if (need.call) {
            given = { upstream: await upstream };
          } else if (need.sign) {
            given = { signature: await sign(signer, need.sign) };
          } else if (need.persist !== undefined) {
            try {
              await save(need.persist);
              given = { persisted: true };
            } catch (e) {
              // A webhook is refused (Polar delivers it again); a check's answer is passed on,
              // its changes saved with the next request's.
              console.error(`polar-license relay: the store could not be saved (${e instanceof Error ? e.message : 'error'})${answered ? '' : head.path === WEBHOOK_ROUTE ? ': the webhook is refused, Polar retries it' : ': the answer is passed on'}; its changes are saved with the next`);
              given = { persisted: false };
            }
          } else if (need.landed !== undefined) {
            land(need.landed);
          } else if (need.warn) {
            console.warn(`polar-license relay: ${need.warn}`);
          } else if (need.error) {
            console.error(`polar-license relay: ${need.error}`);
          }
        }
      })()
        .catch((e) => {
          if (!answered) refuse(e);
          else console.error(`polar-license relay: a call to Polar failed (${e instanceof Error ? e.message : 'error'})`);
        })
        .finally(() => {
          for (const flight of [...led.keys()]) land(flight);
        });
      ctx?.waitUntil?.(run);
      return answer;
    }

    async function handle(request, env, ctx) {
      ready ??= start();
      const { core, signer } = await ready;
      const url = new URL(request.url);
      const head = {
        method: request.method,
        path: url.pathname,
        headers: [...request.headers],
        clientIp: String((await clientIp(request, env, ctx)) ?? 'unknown'),
      };
      const out = await drive(core, signer, request, head, ctx);
      // The relay's own next reads (a grant webhook's refetch, a page, a reconcile), after the answer.
      const reads = kickReads(core);
      ctx?.waitUntil?.(reads);
      return out;
    }

    // The core's answer when the host failed (its CORS rule: the configured origins, not `*`);
    // without the WebAssembly, a 500 that grants no origin.
    async function failed(request) {
      try {
        return toResponse((await load()).failed(options, request.headers.get('origin') ?? undefined));
      } catch {
        return new Response('{"detail":"the relay is not configured correctly"}', { status: 500, headers: { 'content-type': 'application/json' } });
      }
    }

    return {
      /** The Web-standard handler: `export default { fetch: relay.fetch }` on Workers. */
      async fetch(request, env, ctx) {
        try {
          return await handle(request, env, ctx);
        } catch (e) {
          // A configuration error (a bad option, a bad key) or a fault of the host: never the
          // token or the key in the answer or the log.
          console.error(`polar-license relay: ${e instanceof TypeError || e instanceof Error ? e.message : 'error'}`);
          return failed(request);
        }
      },
      /** Loads the WebAssembly and checks the options and the key now (else on the first request). */
      async ready() {
        ready ??= start();
        const { core, signer } = await ready;
        kickReads(core);
        return { kid: signer.kid, publicKey: signer.publicKey };
      },
      /** The relay's work between requests (the roster's and the reconcile's reads of Polar), run now: a Durable
       * Object's alarm calls it; resolves when the reads due now are done. */
      async alarm() {
        ready ??= start();
        const { core } = await ready;
        await kickReads(core);
      },
      /** Stops the relay's work between requests (its timer and its reads of Polar) for good; resolves once the
       * run under way, if any, has ended. Requests are still answered, with no reads after them. */
      async close() {
        closed = true;
        timer?.stop();
        await kickReads(null);
      },
    };
  };
}

/** Saves in a row that refuse one value alone, while others are written, before it is
 * dropped as refused for good (an error that says so drops it at once). */
const REFUSALS = 3;

/** The layout of a Durable Object's store: entries read per key through index links, and the
 * time row (3). */
const LAYOUT = 3;

/** Pages a store written before index links (`e:` keys only) or the time row into them, once. */
async function addLinks(storage) {
  let count = 0;
  let after;
  for (;;) {
    const page = await storage.list({ prefix: 'e:', limit: 512, ...(after === undefined ? {} : { startAfter: after }) });
    if (page.size === 0) break;
    const links = [];
    for (const [key, entry] of page) {
      after = key;
      count++;
      for (const tag of tagsOf(entry)) links.push([`i:${tag}|${key.slice(2)}`, 1]);
      links.push([timeKey(entry, key.slice(2)), 1]);
    }
    for (let i = 0; i < links.length; i += 128) await storage.put(Object.fromEntries(links.slice(i, i + 128)));
  }
  await storage.put({ 'n:entries': count, 'v:layout': LAYOUT });
}

/**
 * A Durable Object's storage as the relay's `storage` option, read per key: entries under
 * `e:<id>`, one key per index link `i:<tag>|<id>` (the entries of a key, a license key id, a
 * customer), webhook ids under `w:<id>`, the token budget's state under `b:budget`, the count
 * of entries under `n:entries`, the roster's keys' SHA-256 under `r:<hex>` and its next page
 * under `r:phase`; written 128 keys at a time (the storage API's limit per call). At start
 * only the webhook ids (three days' worth), the budget, the count and the roster's page are
 * read: each request reads what it touches (`read`, `list`), so start-up time does not grow
 * with the store or the roster; the reconcile then learns the stored keys a page at a time
 * between requests (`rows`).
 * A store written before index links gets them once, at its first start.
 */
export function durableStorage(storage) {
  // The alarm this object set last (ms), if any.
  let alarmAt = null;
  const getMany = async (keys) => {
    const out = new Map();
    for (let i = 0; i < keys.length; i += 128) {
      for (const [k, v] of await storage.get(keys.slice(i, i + 128))) out.set(k, v);
    }
    return out;
  };
  // Keys whose value was refused alone while others were written, how many saves in a row.
  const strikes = new Map();
  /** `batch` ([key, value][]) written key by key after `failed` (its call's error): the keys
   * refused for good, [key, why][], dropped. A value is refused for good when its own write
   * fails while another of the batch is written, with an error that says the value cannot be
   * stored (RangeError: past the 128 KiB a value or the key's 2 KiB; a value that cannot be
   * cloned), or in REFUSALS saves in a row; when none is written the storage is down: the
   * save fails and every key is tried again with the next. */
  const putEach = async (batch, failed) => {
    const refusals = [];
    let written = 0;
    for (const [key, value] of batch) {
      try {
        await storage.put({ [key]: value });
        written++;
        strikes.delete(key);
      } catch (e) {
        refusals.push([key, e]);
      }
    }
    if (written === 0) throw failed;
    const forGood = [];
    for (const [key, e] of refusals) {
      const n = (strikes.get(key) ?? 0) + 1;
      const unstorable = e instanceof RangeError || e instanceof TypeError || e?.name === 'DataCloneError';
      if (unstorable || n >= REFUSALS) {
        strikes.delete(key);
        forGood.push([key, e instanceof Error ? e.message : 'refused']);
      } else {
        strikes.set(key, n);
      }
    }
    if (forGood.length < refusals.length) throw failed;
    return forGood;
  };
  return {
    paged: true,
    /** The store's small global state: webhook ids, the budget, the count of entries. */
    async start() {
      if ((await storage.get('v:layout')) !== LAYOUT) await addLinks(storage);
      const items = [];
      for (const [key, at] of await storage.list({ prefix: 'w:' })) items.push({ op: 'webhook', id: key.slice(2), at });
      const global = await getMany(['b:budget', 'n:entries', 'r:phase']);
      if (global.has('b:budget')) items.push({ op: 'budget', state: global.get('b:budget') });
      if (global.has('n:entries')) items.push({ op: 'count', n: global.get('n:entries') });
      // The roster's next page (0: current): its keys are read per request, never here.
      if (global.has('r:phase')) items.push({ op: 'rosterPage', page: global.get('r:phase') });
      return items;
    },
    /** The values of `keys` (a Map; a key not stored is absent). */
    read: getMany,
    /** The keys under `prefix` (an index row). */
    async list(prefix) {
      return [...(await storage.list({ prefix })).keys()];
    },
    /** At most `limit` index rows whose tag starts with `prefix`, those after the row `after`
     * (`<tag>|<entry id>`; undefined: from the first), in order, without their `i:`: a page
     * of the stored keys' listing (the reconcile's). */
    async rows(prefix, after, limit) {
      const page = await storage.list({ prefix: `i:${prefix}`, limit, ...(after === undefined ? {} : { startAfter: `i:${after}` }) });
      return [...page.keys()].map((k) => k.slice(2));
    },
    /** The time row's first `n` keys: the oldest entries (a full store's next evictions). */
    async oldest(n) {
      return [...(await storage.list({ prefix: TIME_ROW, limit: n })).keys()];
    },
    /** Everything, as journal items (a store read whole). */
    async load() {
      const items = [];
      for (const [key, value] of await storage.list()) {
        if (key.startsWith('e:')) items.push({ op: 'put', id: key.slice(2), entry: value });
        else if (key.startsWith('w:')) items.push({ op: 'webhook', id: key.slice(2), at: value });
        else if (key === 'b:budget') items.push({ op: 'budget', state: value });
      }
      return items;
    },
    /** The relay's next work (the roster's and the reconcile's reads) in `ms`: the object's alarm, unless one
     * rings sooner (known without a storage call when this object set it: every request asks). */
    async wake(ms) {
      const now = Date.now();
      const at = now + ms;
      if (alarmAt !== null && alarmAt > now && alarmAt <= at) return;
      const set = await storage.getAlarm();
      // None set, one past (the alarm ringing now), or a later one: this one.
      if (set === null || set === undefined || set <= now || set > at) {
        await storage.setAlarm(at);
        alarmAt = at;
      } else {
        alarmAt = set;
      }
    },
    async save(items) {
      const puts = new Map();
      const deletes = new Set();
      for (const item of items) {
        const key = storeKey(item);
        const value = storeValue(item);
        if (value === undefined) {
          deletes.add(key);
          puts.delete(key);
        } else {
          puts.set(key, value);
          deletes.delete(key);
        }
      }
      const entries = [...puts];
      const refused = [];
      for (let i = 0; i < entries.length; i += 128) {
        const batch = entries.slice(i, i + 128);
        try {
          await storage.put(Object.fromEntries(batch));
        } catch (e) {
          // One value refused fails the whole call: each written alone tells a value refused
          // for good from a storage that is down (then the save fails, tried again later).
          refused.push(...(await putEach(batch, e)));
        }
      }
      const gone = [...deletes];
      for (let i = 0; i < gone.length; i += 128) await storage.delete(gone.slice(i, i + 128));
      return refused;
    },
  };
}

/**
 * Binds the Durable Object pieces to a `createRelay`: `relayStore(optionsOf)`, the Durable
 * Object class that holds the verdict store (one object per name: every request of the
 * seller's relay goes to it, so one store, one budget, and its checks of one key share one
 * call), and `relayWorker(optionsOf, {binding, name})`, the Worker's handler that sends every
 * request to that object, or, without the binding, relays as before (every check forwarded)
 * and says so once. `optionsOf(env)` gives createRelay's options.
 */
export function bindDurable(createRelay) {
  function relayStore(optionsOf) {
    return class PolarRelayStore {
      constructor(state, env) {
        this.state = state;
        this.env = env;
        this.relay = null;
      }
      open() {
        this.relay ??= createRelay({
          ...optionsOf(this.env),
          store: { ...(optionsOf(this.env).store ?? {}) },
          storage: durableStorage(this.state.storage),
        });
        return this.relay;
      }
      async fetch(request) {
        // The object stays up while a call to Polar goes on past its check's stale answer.
        return this.open().fetch(request, this.env, { waitUntil: (p) => this.state.waitUntil?.(p) });
      }
      /** The relay's reads between requests (the roster's, the reconcile's). */
      async alarm() {
        await this.open().alarm();
      }
    };
  }
  function relayWorker(optionsOf, { binding = 'POLAR_RELAY_STORE', name = 'relay' } = {}) {
    let forwarding = null;
    return {
      async fetch(request, env, ctx) {
        const namespace = env?.[binding];
        if (namespace) return namespace.get(namespace.idFromName(name)).fetch(request);
        if (!forwarding) {
          console.warn(`polar-license relay: no Durable Object binding ${binding}: no verdict store, every check is forwarded to Polar`);
          const { store, storage, ...options } = optionsOf(env);
          forwarding = createRelay(options);
        }
        return forwarding.fetch(request, env, ctx);
      },
    };
  }
  return { relayStore, relayWorker };
}
