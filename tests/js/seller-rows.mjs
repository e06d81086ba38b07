// The seller's rows (issue #54, "Done when" 2nd bullet) for the faces that are not Rust: the
// table (tests/vectors/seller-rows.json) read, and a verdict rendered exactly as the Rust faces
// render it (crates/testkit/src/seller_rows.rs, `Verdict::render`), so an npm runner
// compares the same strings and writes the same TSV (face row expected got result).
//
// `node tests/js/seller-rows.mjs --flat` prints the rows for the C runner
// (bindings/c/tests/test_seller_table.c), one tab-separated line each (the values rows, issue
// #68, after them: see the end of this file):
//   row  ID  API  EXPIRES_DAY  BENEFIT  SUB_STATUS  PERIOD_END_DAY  CANCEL  ENDS_DAY
//        RELEASED_DAY  TRIAL_DAYS  TRIAL_BENEFIT  LIMIT_ACTIVATIONS  CUSTOMER_ADMIN  RATE_LIMIT
//   step DO  DAY  CELL  EXPECTED  TIMES   (EXPECTED rendered; `-` where a field is absent;
//        TIMES a request_codes step's, else 0)
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DAY = 86400;
export const TRIAL_BENEFIT = '7f3c1e2a-9b4d-4c8e-a1f2-3d4e5f6a7b8c';
export const PAID_BENEFIT = '4b1c2d3e-5f60-4a7b-8c9d-0e1f2a3b4c5d';

/** The table's rows, as in the JSON. */
export function rows() {
  const url = new URL('../vectors/seller-rows.json', import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')).rows;
}

/** `+Nd`, or `+Nd+Mm`: seconds from the row's start, rounded to the minute. */
function at(seconds) {
  const minutes = Math.round(seconds / 60);
  const d = Math.floor(minutes / 1440);
  const m = minutes - d * 1440;
  const sign = d < 0 ? '-' : '+';
  return m === 0 ? `${sign}${Math.abs(d)}d` : `${sign}${Math.abs(d)}d+${m}m`;
}

/**
 * A verdict in the table's vocabulary: { verdict, source?, fallback?: [bool, paidSeconds|null],
 * trial?: null | { local, state, days_left, ends: seconds|null } } (an absent key: the face
 * gave no such field), as one line.
 */
export function render(v) {
  let s = v.verdict;
  if (v.source != null) s += ` ${v.source}`;
  if (v.fallback !== undefined) {
    const [fb, paid] = v.fallback;
    if (fb) s += ` · fallback to ${paid == null ? '?' : at(paid)}`;
    else if (paid != null) s += ` · no fallback, paid to ${at(paid)}`;
    else s += ' · no fallback';
  }
  if (v.trial !== undefined) {
    const t = v.trial;
    if (t === null) s += ' · no trial';
    else {
      s += ` · trial ${t.local ? 'local' : 'key'} ${t.state} ${t.days_left}d left, ends ${
        t.ends == null ? '?' : at(t.ends)
      }`;
    }
  }
  return s;
}

/** A step's expectation as a verdict (seconds from the row's start), or null. */
export function expected(step) {
  const e = step.expect;
  if (!e) return null;
  const day = (d) => (d == null ? null : Math.round(d * DAY));
  const v = { verdict: e.verdict };
  if (e.source != null) v.source = e.source;
  if (typeof e.fallback === 'boolean') v.fallback = [e.fallback, day(e.paid_through_day)];
  if ('trial' in e) {
    v.trial =
      e.trial === null
        ? null
        : {
            local: e.trial.local,
            state: e.trial.state,
            days_left: e.trial.days_left,
            ends: day(e.trial.ends_day),
          };
  }
  return v;
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--flat') {
  const dash = (x) => (x == null ? '-' : String(x));
  for (const r of rows().filter((r) => !r.world)) {
    const p = r.polar;
    const s = p.subscription || {};
    const a = r.app || {};
    console.log(
      [
        'row', r.id, p.api || '2026-10', dash(p.expires_day), dash(p.benefit), dash(s.status),
        dash(s.period_end_day), s.cancel_at_period_end ? 1 : 0, dash(s.ends_day),
        dash(a.released_day), a.trial_days || 0, a.trial_benefit ? 1 : 0,
        p.limit_activations ?? 3, p.customer_admin === false ? 0 : 1, p.rate_limit ? 1 : 0,
      ].join('\t'),
    );
    for (const st of r.steps) {
      const e = expected(st);
      console.log(
        ['step', st.do, dash(st.day), st.cell ? 1 : 0, e ? render(e) : '-', st.times ?? 0].join(
          '\t',
        ),
      );
    }
  }
  // The values rows (issue #68), after the others:
  //   vrow  ID  HOSTS (comma-separated)
  //   vstep DO  KEY  RELAY  NAME  UNITS  ID  CELL  EXPECTED  STEP (its JSON, for
  //         tests/js/values-world.mjs)
  for (const r of rows().filter((r) => r.world === 'values')) {
    console.log(['vrow', r.id, r.hosts.join(',')].join('\t'));
    for (const st of r.steps) {
      console.log(
        ['vstep', st.do, dash(st.key), st.relay ?? 'plain', dash(st.name), dash(st.units), dash(st.id), st.cell ? 1 : 0,
          dash(st.expect?.verdict), JSON.stringify(st)].join('\t'),
      );
    }
  }
}
