// The seller table's values rows (issue #68, tests/vectors/seller-rows.json's rows with
// `"world": "values"`) for the node-based runners: the row's Polar and relays are a
// tests/js/values-world.mjs process (one per relay host, spoken to one JSON line a step), and
// the face plays its own steps through `face` ({ value, usage, relayCheck }, each resolving to
// the step's rendered answer). Each row gives `{ id: ROW@HOST, expected, got, failures }`, as
// the other rows do.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const WORLD = fileURLToPath(new URL('./values-world.mjs', import.meta.url));
/** How long a polled face step waits for its expected answer. */
export const POLL_MS = 10_000;

/** The world on `host`: its hello ({ org, pair, relays, keys, meter }), `step(s)` and `close()`. */
export async function startWorld(host, env = process.env) {
  const child = spawn(process.execPath, [WORLD, host], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`the values world (${host}) ended`);
    return JSON.parse(value);
  };
  const hello = await next();
  if (hello.error) throw new Error(`the values world (${host}) did not start: ${hello.error}`);
  return {
    ...hello,
    async step(s) {
      child.stdin.write(`${JSON.stringify(s)}\n`);
      const answer = await next();
      if (answer.error) throw new Error(`${s.do}: ${answer.error}`);
      return answer;
    },
    close: () =>
      new Promise((done) => {
        if (child.exitCode !== null) return done();
        child.once('exit', done);
        child.stdin.end();
      }),
  };
}

/** A value as the table renders it: absent, a string bare, else its JSON. */
export const renderValue = (v) => (v === undefined || v === null ? 'absent' : typeof v === 'string' ? v : JSON.stringify(v));

/** The face's steps: value and relay_check polled until the expected answer (POLL_MS at most). */
const FACE = new Set(['value', 'usage', 'relay_check']);

/** Plays values row `row` on `world` with `face`'s calls. */
export async function playValuesRow(row, world, face) {
  const found = { id: `${row.id}@${world.host}`, expected: '', got: '', failures: [] };
  const cellAt = row.steps.findIndex((s) => s.cell);
  const compare = (i, want, got) => {
    if (want == null) return;
    if (want !== got) found.failures.push(`step ${i} (${row.steps[i].do}): expected \`${want}\`, got \`${got}\``);
    if (cellAt === -1 || cellAt === i) [found.expected, found.got] = [want, got];
  };
  try {
    for (const [i, s] of row.steps.entries()) {
      const want = s.expect?.verdict;
      if (!FACE.has(s.do)) {
        const answer = await world.step(s);
        if (want != null) compare(i, want, answer.got);
        continue;
      }
      const relay = world.relays[s.relay ?? 'plain'];
      const key = world.keys[s.key];
      if (s.do === 'usage') {
        compare(i, want, await face.usage(relay, key, world.meter, s.units, s.id));
        continue;
      }
      const once = s.do === 'value' ? () => face.value(relay, key, s.name) : () => face.relayCheck(relay, key);
      const start = Date.now();
      let got;
      for (;;) {
        got = await once();
        if (got === want || Date.now() - start > POLL_MS) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      compare(i, want, got);
    }
  } catch (e) {
    found.failures.push(`the row could not be played: ${e.stack ?? e}`);
  }
  return found;
}
