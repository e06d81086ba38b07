// The fenced code blocks of a Markdown file and the marker that says what each one is for.
//
// Every code block of the READMEs and guides carries a marker, an HTML comment on the line
// before its fence (GitHub and mdBook render neither), one of:
//
//   <!-- file: SCENARIO PATH -->         the block is the file PATH of scenario SCENARIO
//   <!-- file: SCENARIO PATH append -->  the block is appended to PATH (a Cargo.toml's
//                                        [dependencies], pasted under `cargo new`'s)
//   <!-- run: SCENARIO -->               a shell block, run with bash -e as if typed into one
//                                        terminal: the first starts in the scenario's
//                                        directory, each next one where the last left off,
//                                        with the variables it exported
//   <!-- run: SCENARIO checkout -->      the same, started in the checkout of this repository
//                                        (what a block "from a checkout" means), as in
//                                        another terminal: the next block is where the
//                                        last plain one left off
//   <!-- run: SCENARIO background -->    a command a user starts "in another terminal" (the
//                                        emulator): started, its first line awaited, stopped
//                                        when the scenario ends
//   <!-- run: SCENARIO browse URL -->    a command that serves a page (started as a background
//                                        one), then URL opened in headless Chromium as a user
//                                        would (tests/docs/run.mjs): what the page shows is
//                                        the run's output
//   <!-- output: SCENARIO -->            what the scenario's last run printed on stdout, line
//                                        for line; `…` in a line stands for any text,
//                                        a line that is only `…` for any number of lines
//   <!-- not-run: REASON -->             shown, not run (the reason is printed by the runner)
//   <!-- example: NAME -->               the npm package README's examples, run by
//                                        tests/js/readme.test.mjs (listed as not run here)
//
// A block with no marker is an error: tests/docs/run.mjs fails the file. Scenarios are scoped
// to their file; each starts in a fresh directory.
import { readFileSync } from 'node:fs';

const MARKER = /^<!--\s*(file|run|output|not-run|example):\s*(.*?)\s*-->\s*$/;
const FENCE = /^(\s*)(`{3,}|~{3,})\s*([\w+-]*)\s*$/;

/** Every fenced block of `path`: `{ line, lang, code, marker, error }`. */
export function blocks(path) {
  const lines = readFileSync(path, 'utf8').split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, lang] = open;
    const body = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = lines[j].trim();
      if (close.startsWith(fence[0].repeat(fence.length)) && /^[`~]+$/.test(close)) break;
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j]);
    }
    const block = { line: i + 1, lang, code: body.join('\n') + '\n', marker: null, error: null };
    let k = i - 1;
    while (k >= 0 && lines[k].trim() === '') k--;
    const m = k >= 0 ? MARKER.exec(lines[k].trim()) : null;
    if (!m) {
      block.error = `${path}:${i + 1}: a \`\`\`${lang} block without a marker (<!-- file|run|output|not-run: … -->)`;
    } else {
      block.marker = parseMarker(m[1], m[2]);
      if (typeof block.marker === 'string') {
        block.error = `${path}:${k + 1}: ${block.marker}`;
        block.marker = null;
      }
    }
    out.push(block);
    i = j;
  }
  return out;
}

function parseMarker(kind, args) {
  const words = args.split(/\s+/).filter(Boolean);
  switch (kind) {
    case 'file': {
      const [scenario, path, mode, ...rest] = words;
      if (!scenario || !path || rest.length || (mode && mode !== 'append')) {
        return 'file: wants SCENARIO PATH [append]';
      }
      if (path.startsWith('/') || path.split('/').includes('..')) return `file: ${path} leaves the scenario`;
      return { kind, scenario, path, append: mode === 'append' };
    }
    case 'run': {
      const [scenario, mode, ...rest] = words;
      if (mode === 'browse') {
        if (!scenario || rest.length !== 1) return 'run: SCENARIO browse wants a URL';
        return { kind, scenario, background: true, checkout: false, browse: rest[0] };
      }
      if (!scenario || rest.length || (mode && mode !== 'background' && mode !== 'checkout')) {
        return 'run: wants SCENARIO [background|checkout|browse URL]';
      }
      return { kind, scenario, background: mode === 'background', checkout: mode === 'checkout' };
    }
    case 'output': {
      if (words.length !== 1) return 'output: wants SCENARIO';
      return { kind, scenario: words[0] };
    }
    case 'example': {
      // The npm package README's examples: run by tests/js/readme.test.mjs in the wasm stage
      // (in node from the packed tarball; the TypeScript one compiled, the HTML one in
      // Chromium), which finds them by this marker.
      if (words.length !== 1) return 'example: wants NAME';
      return { kind: 'not-run', reason: `example ${words[0]}: run by the wasm stage (tests/js/readme.test.mjs; the TypeScript one compiled by npm-types, the HTML one in tests/browser)` };
    }
    default:
      if (!args) return 'not-run: wants a reason';
      return { kind, reason: args };
  }
}

/** Whether `actual` (a program's stdout) is what `expected` (an output block) shows. */
export function outputMatches(expected, actual) {
  const want = expected.replace(/\n+$/, '').split('\n').map((w) => w.replace(/\s+$/, ''));
  const got = actual.replace(/\n+$/, '').split('\n').map((g) => g.replace(/\s+$/, ''));
  const line = (w, g) => new RegExp(`^${w.split('…').map(escape).join('.*')}$`).test(g);
  // match(i, j): want[i..] matches got[j..]; a line that is only `…` stands for any number of
  // lines (none included).
  const seen = new Map();
  const match = (i, j) => {
    const k = i * (got.length + 1) + j;
    if (seen.has(k)) return seen.get(k);
    let ok;
    if (i === want.length) ok = j === got.length;
    else if (want[i].trim() === '…') ok = match(i + 1, j) || (j < got.length && match(i, j + 1));
    else ok = j < got.length && line(want[i], got[j]) && match(i + 1, j + 1);
    seen.set(k, ok);
    return ok;
  };
  return match(0, 0);
}

function escape(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
