// The npm package's twin of tests/framing.rs: the same HTTP answers that are not plain ones,
// served byte for byte by a raw server (node:net), read through the installed package in node,
// held to the same table, tests/framing/cases.json (a case whose faces differ says so there,
// and docs/answers.md's "One answer on every face" says why it can change no verdict of Polar's).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { gzipSync } from 'node:zlib';
import { EMULATOR, ORG, README_KEY, pkg } from './emulator.mjs';

const { LicenseClient } = await pkg();
const table = JSON.parse(readFileSync(new URL('../framing/cases.json', import.meta.url), 'utf8'));

/** The emulator's real answer to a validate of the demo key: what `valid` stands for. */
async function realAnswer() {
  const resp = await fetch(`${EMULATOR}/v1/customer-portal/license-keys/validate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key: README_KEY, organization_id: ORG }),
  });
  assert.equal(resp.status, 200);
  return Buffer.from(await resp.arrayBuffer());
}

function body(spec, valid) {
  if (spec.startsWith('text:')) return Buffer.from(spec.slice(5));
  if (spec.startsWith('valid+')) {
    const size = Number(spec.slice(6));
    return Buffer.concat([valid, Buffer.alloc(size - valid.length, ' ')]);
  }
  return valid;
}

/** A raw server answering every request with `answer()`'s bytes, then closing. */
async function rawServer(answer) {
  const server = createServer((socket) => {
    let seen = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      seen = Buffer.concat([seen, chunk]);
      const end = seen.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/content-length:\s*(\d+)/i.exec(seen.subarray(0, end).toString())?.[1] ?? 0);
      if (seen.length >= end + 4 + length) socket.end(answer());
    });
    socket.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

/** What the package read: `licensed`, or the rejection's code, retryAfter and status. */
async function reading(client) {
  try {
    await client.validate(README_KEY);
    return ['licensed', null, null];
  } catch (e) {
    return [e.code, e.retryAfter ?? null, e.status ?? null];
  }
}

test('odd HTTP answers read as the table says (tests/framing/cases.json)', async () => {
  const valid = await realAnswer();
  let current = Buffer.alloc(0);
  const server = await rawServer(() => current);
  const client = new LicenseClient({ organizationId: ORG, baseUrl: server.url, storage: 'memory', timeout: 5 });
  const wrong = [];
  try {
    for (const c of table.cases) {
      const b = body(c.body, valid);
      current = Buffer.concat([Buffer.from(c.head.replaceAll('{len}', String(b.length))), b]);
      const got = await reading(client);
      const expect = typeof c.expect === 'string' ? c.expect : c.expect.node;
      const want = [expect, 'retry_after' in c ? c.retry_after : got[1], 'status' in c ? c.status : got[2]];
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        wrong.push(`${c.name}: read ${JSON.stringify(got)}, the table says ${JSON.stringify(want)}`);
      }
    }
  } finally {
    server.close();
  }
  assert.deepEqual(wrong, [], `${wrong.length} of ${table.cases.length} cases`);
});

// fetch asks for compression (Accept-Encoding: gzip, deflate, br), as browsers do, and reads
// what an honest server then sends, decoded; the native face asks for none, and a compressed
// body is not an answer to its request (tests/framing.rs).
test('a gzip answer to what fetch asked for is read decoded', async () => {
  const valid = await realAnswer();
  const zipped = gzipSync(valid);
  const server = await rawServer(() =>
    Buffer.concat([
      Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: ${zipped.length}\r\nConnection: close\r\n\r\n`),
      zipped,
    ]),
  );
  try {
    const client = new LicenseClient({ organizationId: ORG, baseUrl: server.url, storage: 'memory', timeout: 5 });
    assert.deepEqual(await reading(client), ['licensed', null, null]);
  } finally {
    server.close();
  }
});
