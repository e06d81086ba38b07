// What a sample a seller copies must never print (issue #65): a Rust `Debug` shape (the
// internals a customer should not read: `Offline { timeout: false, … }`,
// `InvalidInput { field: "key", … }`), or an instant in epoch seconds (`until 1796400831`).
// Machine output, a line that is a JSON object or array (`--json`, the JSON log), keeps its
// numbers. `node tests/docs/internals.mjs` checks the rule itself.

const DEBUG_SHAPE = /\b[A-Z][A-Za-z0-9]*(?:::[A-Z][A-Za-z0-9]*)* \{ [a-z_][a-z0-9_]*: /;
const DEBUG_TUPLE = /\b(?:Err|Ok|Some)\((?:[A-Z][A-Za-z]+[ ({]|")/;
// 2017-07 to 2033-05 in seconds: ten digits standing alone (not inside a word: a hex address
// such as ldd's `(0x00007f1907800000)` has such a run by chance of where the loader put it).
const EPOCH = /(?<![\w.:-])1[5-9]\d{8}(?![\w.:-])/;

/** The first line of `text` a customer must not be shown, with why; null when none. */
export function internalLine(text) {
  for (const line of String(text ?? '').split('\n')) {
    const t = line.trim();
    if (t.startsWith('{') || t.startsWith('[')) continue;
    if (DEBUG_SHAPE.test(t) || DEBUG_TUPLE.test(t)) return `a Rust Debug shape: ${t}`;
    if (EPOCH.test(t)) return `an instant in epoch seconds: ${t}`;
  }
  return null;
}

/** The rule tried on lines it must catch and lines it must let pass: what it got wrong. */
export function selfCheck() {
  const bad = [
    'Error: Offline { timeout: false, detail: "io: Connection refused (os error 111)" }',
    'Error: InvalidInput { field: "key", message: "is required" }',
    'relay: validate ****-4C5B6A 200 (lease 5f2 until 1796400831)',
    'got Err(Protocol { status: Some(200), detail: "x" })',
  ];
  const good = [
    'Not deactivated: Polar, the license server, could not be reached: check your internet connection.',
    'relay: validate ****-4C5B6A 200 (lease 5f2 until 2026-12-04T16:13:51Z)',
    '{"iat":1796400831,"outcome":"licensed"}',
    'activation 8c4e7fad-1253-4b13-8184-6b4c9d08fc9f ("box")',
    'licensed ****-4C5B6A (from cache, grace 6d 23h left)',
    'Finished `release` profile [optimized] target(s) in 12.34s',
    'libpolar_license.so.0.1 => /home/me/Desktop/my-app/./libpolar_license.so.0.1 (0x00007f1907800000)',
  ];
  const wrong = [
    ...bad.filter((l) => internalLine(l) === null).map((l) => `not caught: ${l}`),
    ...good.filter((l) => internalLine(l) !== null).map((l) => `caught wrongly: ${l}`),
  ];
  return wrong;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const wrong = selfCheck();
  for (const w of wrong) console.log(w);
  console.log(wrong.length ? 'internals: the rule is wrong' : 'internals: every line judged right');
  process.exit(wrong.length ? 1 : 0);
}
