// polar-license/relay: the seller-run relay as a Web-standard `fetch(request)` handler
// (Cloudflare Workers, Deno, Bun, node). Every decision is the Rust relay's (RelayCore, the
// core `polar-license relay serve` runs; docs/architecture.md lists where each rule lives):
// this file is I/O. The request and its body in, Polar's answer (an async fetch) in, the answer
// out; the storage's get, list, put, delete and alarm as the core names them; the lease's
// Ed25519 signature by WebCrypto from a non-extractable key (the key file's text passes
// through the WebAssembly once, to be read; the CryptoKey that signs never does).

/** A thrown value's message, for a log line (never an option's value: the core's errors hold none). */
const why = (e) => (e instanceof Error ? e.message : 'error');

/**
 * Reads a signing key file's text (`KID=k4.secret.…`, as `polar-license relay keygen` writes
 * it) into a non-extractable WebCrypto Ed25519 key: the core reads the format
 * (`RelayCore.signingKey`, the reader `relay serve` uses); WebCrypto imports the halves and
 * signs a probe that the public half verifies, so a damaged key fails here, not as leases
 * nobody can verify. Errors never contain the secret.
 * @param {() => Promise<Function> | Function} load returns the RelayCore class, once loaded
 */
export async function importSigningKey(text, subtle = globalThis.crypto?.subtle, load) {
  if (!subtle) throw new TypeError('signingKey: this runtime has no WebCrypto (crypto.subtle)');
  let parts;
  try {
    parts = (await load()).signingKey(text);
  } catch (e) {
    throw new TypeError(e instanceof Error ? e.message : 'signingKey: not a signing key');
  }
  const { kid, raw } = parts;
  // The halves as a JWK's base64url (WebCrypto's format).
  const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const [ed25519, x] = [{ name: 'Ed25519' }, b64url(raw.subarray(32))];
  let key;
  let verifier;
  try {
    key = await subtle.importKey('jwk', { kty: 'OKP', crv: 'Ed25519', d: b64url(raw.subarray(0, 32)), x }, ed25519, false, ['sign']);
    verifier = await subtle.importKey('jwk', { kty: 'OKP', crv: 'Ed25519', x }, ed25519, false, ['verify']);
  } catch (e) {
    throw new TypeError(`signingKey: WebCrypto refused the Ed25519 key (${e?.name ?? 'Error'})`);
  }
  const probe = new TextEncoder().encode('polar-license relay key check');
  if (!(await subtle.verify(ed25519, verifier, await subtle.sign(ed25519, key, probe), probe))) throw new TypeError('signingKey: its public half does not match its secret');
  return { kid, key, publicKey: `k4.public.${x}` };
}

/** Reads at most `limit` bytes of a body stream (the rest is cancelled). */
async function readCapped(body, limit) {
  const reader = body?.getReader();
  const chunks = [];
  let size = 0;
  try {
    while (reader && size < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value.subarray(0, limit - size));
      size += chunks.at(-1).length;
    }
    if (size >= limit) await reader?.cancel().catch(() => {});
  } finally {
    reader?.releaseLock?.();
  }
  return new Uint8Array(await new Blob(chunks).arrayBuffer());
}

/** Polar's answer to a call the core names (`{method, url, headers, body, timeoutMs, bytes}`),
 * its body read to at most `bytes`, or the name of what the fetch threw (the core tells a
 * timeout from no answer); never its headers in a log: they hold the token. */
async function callPolar(upstreamFetch, ask) {
  try {
    const r = await upstreamFetch(ask.url, { method: ask.method, headers: ask.headers, body: ask.body, redirect: 'manual', signal: AbortSignal.timeout(ask.timeoutMs) });
    return { status: r.status, headers: [...r.headers], body: await readCapped(r.body, ask.bytes) };
  } catch (e) {
    return { thrown: e?.name ?? 'Error' };
  }
}

/** The core's answer (`{status, headers, body}`, its body null where a Response takes none). */
const toResponse = (r) => new Response(r.body, r);

/**
 * The relay's own jobs between requests, one loop over the core's background (`poll`, given
 * what the last job got): a call of Polar's for the roster, the reconcile, the usage, a load of
 * what a read touches in a paged store, a page of the stored keys' listing, a save, the
 * storage's alarm read or set, or how long to wait. The core decides which job and when; this
 * only does it. One run at a time: kicked after every request (a grant webhook's refetch goes
 * at once) and when the wait's time comes (a Durable Object's alarm, else a timer). Returns
 * `kick(core)`.
 */
function readsDriver({ upstreamFetch, persist, storage, timer, loaded, rows, closed }) {
  let running = null;
  let again = false;
  const clock = () => [Date.now(), performance.now()];
  // What the job asks for, done (a listing that fails: the core logs why, and lists again).
  async function does(job) {
    if (job.list) return rows(job.list).catch((e) => ({ error: why(e) }));
    if (job.load) return { loaded: await loaded(job.load) };
    return callPolar(upstreamFetch, job.send);
  }
  async function run(core) {
    try {
      let id;
      let given;
      // Until the core says wait (after its jobs in a row: host::JOBS_PER_RUN) or done.
      while (!closed()) {
        const job = core.poll(id, given, ...clock());
        [id, given] = [undefined, undefined];
        if (job === null) return;
        // Saved when the core says (after a read of Polar's: never between a load and its use).
        if (job.save) await persist(core).catch(() => {});
        else if (job.timer !== undefined) return timer(job.timer);
        else if (job.readAlarm || job.setAlarm !== undefined || job.wake !== undefined) {
          // The storage's alarm (read, then set unless one rings sooner) or its own wake.
          try {
            if (job.readAlarm) given = { alarm: (await storage.getAlarm()) ?? null };
            else return await (job.wake !== undefined ? storage.wake(job.wake) : storage.setAlarm(job.setAlarm));
          } catch (e) {
            return console.error(`polar-license relay: the alarm could not be set (${why(e)})`);
          }
        } else [id, given] = [job.id, await does(job)];
      }
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
        console.error(`polar-license relay: the relay's reads of Polar stopped (${why(e)}): again with the next request`);
      } finally {
        running = null;
      }
    })();
    return running;
  };
}

/** `wake(ms)` by a timer (a host without a Durable Object's alarm; `ms` at most a timer's
 * longest, the core's): one pending at a time, never keeping a node process alive;
 * `wake.stop()` clears it for good (`relay.close()`). */
function timerWake(kick) {
  let timer;
  let stopped = false;
  const wake = (ms) => {
    clearTimeout(timer);
    if (stopped) return;
    timer = setTimeout(() => kick(), ms);
    timer.unref?.();
  };
  wake.stop = () => {
    stopped = true;
    clearTimeout(timer);
  };
  return wake;
}

/**
 * Binds the handler to a way of loading the WebAssembly (each entry has its own: a module
 * import on Workers, a file read on node).
 * @param {() => Promise<Function> | Function} load returns the RelayCore class, once loaded
 * @param {Crypto} webCrypto WebCrypto (node 18 has it only as node:crypto's `webcrypto`)
 */
export function bindRelay(load, webCrypto = globalThis.crypto) {
  return function createRelay(options = {}) {
    // Nothing checked here: the core reads every option (the token, the key, the rest) at
    // start, `ready()` or the first request, and names a bad one.
    options = Object(options);
    const upstreamFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    // Read per key (durableStorage's `paged`: get, list, put and delete the keys the core
    // names), else one read whole (load) and saved by journal items (save): the core tells.
    const storage = options.storage ?? null;
    // One storage call the core names (`put`, `delete`, a storage's own `write`, a whole `save`).
    const call1 = (step) =>
      !storage ? [] : step.save ? storage.save(step.save) : step.put ? storage.put(Object.fromEntries(step.put)) : step.delete ? storage.delete(step.delete) : storage.write(step.write);
    let ready = null;
    const started = () => (ready ??= start());
    let closed = false;
    const start = async () => {
      const RelayCore = await load();
      // The options as given (the core reads its own and names a bad one; of the storage, its
      // calls and whether it is read per key) and the runtime's user agent (the core tells
      // Workers by it).
      const { signingKey, fetch, clientIp, ...given } = options;
      // importSigningKey()'s result, else the key file's text (or nothing: the core says so).
      const signer = typeof signingKey === 'object' && signingKey !== null ? signingKey : await importSigningKey(signingKey, webCrypto?.subtle, load);
      const core = new RelayCore({ ...given, kid: signer.kid, publicKey: signer.publicKey, userAgent: globalThis.navigator?.userAgent });
      // Whether and how the storage is read at start is the core's.
      await openStore(core);
      return { core, signer };
    };
    // The roster's and the reconcile's reads (store.roster, store.reconcileEvery), the core
    // deciding each and how it is woken (the storage's alarm, its own `wake`, else a timer).
    const timer = timerWake(() => ready?.then(({ core }) => kickReads(core), () => {}));
    const kickReads = readsDriver({
      closed: () => closed,
      upstreamFetch,
      storage,
      timer,
      persist: (core) => persist(core),
      loaded: (need) => readOrNull(need),
      rows: async (page) => [...(await storage.list(page)).keys()],
    });
    // The storage's values of the keys and the listings the core names (`{keys, lists}`), as
    // the core takes them (`{values: [key, value | null][], lists: [key, value][][]}`, JSON);
    // the core lays its unsaved changes over them (read your writes).
    const readAll = async ({ gets, lists }) => {
      const [stored, listed] = await Promise.all([Promise.all(gets.map((keys) => storage.get(keys))), Promise.all(lists.map((l) => storage.list(l)))]);
      const values = gets.flatMap((keys, i) => keys.map((k) => [k, stored[i].get(k) ?? null]));
      return JSON.stringify({ values, lists: listed.map((page) => [...page]) });
    };
    // What a load names, read, or null when it could not be.
    const readOrNull = (need) =>
      readAll(need).catch((e) => {
        console.error(`polar-license relay: the store could not be read (${why(e)})`);
        return null;
      });
    // The store opened (a paged one's global state read, an older layout migrated first; else
    // the storage loaded whole), the core naming each read and write.
    const openStore = async (core) => {
      let step = core.open(undefined, Date.now(), performance.now());
      while (!step.done) {
        for (const call of step.calls ?? []) await call1(call);
        const read = step.whole ? JSON.stringify((await storage.load()) ?? []) : await readAll(step.reads);
        step = core.open(read, Date.now(), performance.now());
      }
    };
    // The store's saves, one at a time in order: every answer waits for the save that holds its
    // changes (staged when it asks). Each call (what to write, how many a call, a call refused
    // as a whole written again key by key, what is dropped for good) is the core's
    // (core.save: host/workers.rs); this makes the call and hands back how it went.
    let saving = Promise.resolve();
    const persist = (core) => {
      const run = saving.then(async () => {
        for (let step = core.save(); step !== null; ) {
          if (step.failed !== undefined) throw new Error(step.failed);
          const outcome = await Promise.resolve()
            .then(() => call1(step))
            .then((refused) => (Array.isArray(refused) ? { refused: JSON.stringify(refused) } : {}), (e) => ({ error: e?.name ?? 'Error', why: why(e) }));
          step = core.save(outcome);
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

    /** The lease's Ed25519 signature by WebCrypto, else the name of what it threw (the core
     * logs it and answers without a lease). */
    async function sign(signer, bytes) {
      try {
        return new Uint8Array(await webCrypto.subtle.sign({ name: 'Ed25519' }, signer.key, bytes));
      } catch (e) {
        return e?.name ?? 'Error';
      }
    }

    /**
     * One request, driven: the core's exchange (`start`) says what it needs next (`want`),
     * given what came of the last; every decision is the core's (the operator's routes,
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
          const need = core.want(id, given, Date.now(), performance.now(), random16());
          given = undefined;
          if (need.respond) {
            answered = true;
            respond(toResponse(need.respond));
          }
          if (need.done) return;
          if (need.body !== undefined) {
            // A body whose stream broke off: the core's 400 (as natively), not the host's 500.
            const body = await readCapped(request.body, need.body).catch(() => null);
            given = body === null ? { bodyBroken: true } : { body };
          } else if (need.load) {
            given = { loaded: await readOrNull(need.load) };
          } else if (need.flight !== undefined) {
            const flight = flights.get(need.flight);
            if (need.patience === undefined) await flight;
            given = need.patience === undefined || (await settlesWithin(flight, need.patience)) ? { landed: true } : { patience: true };
          } else if (need.send) {
            if (need.leads !== undefined) {
              let end;
              const landing = new Promise((resolve) => (end = resolve));
              flights.set(need.leads, landing);
              led.set(need.leads, { landing, end });
            }
            upstream = callPolar(upstreamFetch, need.send);
            given = need.patience === undefined || (await settlesWithin(upstream, need.patience)) ? { upstream: await upstream } : { patience: true };
          } else if (need.call) {
            given = { upstream: await upstream };
          } else if (need.sign) {
            given = { signature: await sign(signer, need.sign) };
          } else if (need.persist) {
            // Failed: a webhook is refused (Polar delivers it again), a check's answer passed on.
            given = { persisted: await persist(core).then(() => true, () => false) };
          } else if (need.landed !== undefined) {
            land(need.landed);
          }
        }
      })()
        .catch((e) => {
          if (!answered) refuse(e);
          else console.error(`polar-license relay: a call to Polar failed (${why(e)})`);
        })
        .finally(() => {
          for (const flight of [...led.keys()]) land(flight);
        });
      ctx?.waitUntil?.(run);
      return answer;
    }

    async function handle(request, env, ctx) {
      const { core, signer } = await started();
      const url = new URL(request.url);
      // The runtime's facts about the client's address, the core picking (host::socket_peer):
      // the seller's `clientIp`, createNodeListener's socket address, Deno.serve's
      // `info.remoteAddr`, Bun.serve's `server.requestIP()`.
      const peers = [
        options.clientIp ? await options.clientIp(request, env, ctx) : null,
        ctx?.clientIp,
        env?.remoteAddr?.hostname,
        typeof env?.requestIP === 'function' ? env.requestIP(request)?.address : null,
      ];
      const head = { method: request.method, path: url.pathname, headers: [...request.headers], peers };
      const out = await drive(core, signer, request, head, ctx);
      // The relay's own next reads (a grant webhook's refetch, a page, a reconcile), after the answer.
      const reads = kickReads(core);
      ctx?.waitUntil?.(reads);
      return out;
    }

    // The core's answer when the host failed (its CORS rule: the configured origins, not `*`);
    // without the WebAssembly, a 500 that grants no origin.
    async function failed(origin) {
      try {
        return toResponse((await load()).failed(options, origin));
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
          console.error(`polar-license relay: ${why(e)}`);
          return failed(request?.headers?.get?.('origin'));
        }
      },
      /** The relay's answer when its host failed around it (`origin`: the request's, if any): a 500
       * with the core's CORS grant (createNodeListener answers a request it could not read with it). */
      failed,
      /** Loads the WebAssembly and checks the options and the key now (else on the first request). */
      async ready() {
        const { core, signer } = await started();
        kickReads(core);
        return { kid: signer.kid, publicKey: signer.publicKey };
      },
      /** The relay's work between requests (the roster's and the reconcile's reads of Polar), run now: a Durable
       * Object's alarm calls it; resolves when the reads due now are done. */
      async alarm() {
        const { core } = await started();
        await kickReads(core);
      },
      /** Stops the relay's work between requests (its timer and its reads of Polar) for good; resolves once the
       * run under way, if any, has ended. Requests are still answered, with no reads after them. */
      async close() {
        closed = true;
        timer.stop();
        await kickReads(null);
      },
    };
  };
}

/**
 * A Durable Object's storage as the relay's `storage` option, read per key: the core names
 * every key (its layout, store/layout.rs: entries, index links, webhook ids, the budget, the
 * count, the roster) and each call (at most 128 keys, the storage API's limit) is the core's:
 * this is the object's own get, list, put, delete and alarm. Start-up reads the small global
 * state only, each request what it touches, so start-up time does not grow with the store or the
 * roster. A store written before index links gets them once, at its first start (the core's
 * migration).
 */
export function durableStorage(storage) {
  return {
    paged: true,
    get: (keys) => storage.get(keys),
    list: ({ prefix, after, limit }) =>
      storage.list({ prefix, ...(limit === undefined ? {} : { limit }), ...(after === undefined ? {} : { startAfter: after }) }),
    put: (entries) => storage.put(entries),
    delete: (keys) => storage.delete(keys),
    getAlarm: () => storage.getAlarm(),
    setAlarm: (at) => storage.setAlarm(at),
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
        this.relay ??= createRelay({ ...optionsOf(this.env), durableObject: true, storage: durableStorage(this.state.storage) });
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
          // The core keeps no store without the binding (`durableObject: false`).
          forwarding = createRelay({ ...optionsOf(env), durableObject: false });
        }
        return forwarding.fetch(request, env, ctx);
      },
    };
  }
  return { relayStore, relayWorker };
}
