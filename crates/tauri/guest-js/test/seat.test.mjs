// seat(): the package's only part of issue #67's seats that is not the plugin's. Since issue
// #76 it keeps no schedule (the plugin's thread heartbeats when the core's machine says): it
// acquires, listens for the plugin's `polar-license://seat-ended` and calls `onLost` once
// with its `seat_lost` (or `seat_gone`), and releases on the AbortSignal (once). Tauri's IPC
// and events mocked (mockIPC's shouldMockEvents), its timers node's mock timers.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';

globalThis.window = globalThis;
const { mockIPC, clearMocks } = await import('@tauri-apps/api/mocks');
const { emit } = await import('@tauri-apps/api/event');
const guest = await import('../index.js');

const SEAT = '6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b';
const info = (expiresAt) => ({ id: SEAT, ci: false, expiresAt, endsAtMs: expiresAt * 1000, heartbeatEvery: 100, inUse: 1, size: 1 });
const gone = {
  code: 'seat_gone', class: 'denied', userMessage: 'This seat was freed', detail: 'seat_gone', hint: null,
  field: null, status: null, retryAfter: null, remainingUsages: null, inUse: null, size: null, freesAt: null, gone: true,
};
const lostError = { ...gone, code: 'seat_lost', class: 'unverified', userMessage: "This device's seat ended", detail: 'seat lost: offline' };

/** Lets the promise callbacks queued by a timer run. */
const settle = () => new Promise((r) => setImmediate(r));

test('seat() sends no heartbeat of its own and releases once when the signal aborts', async () => {
  mock.timers.enable({ apis: ['setInterval', 'setTimeout'] });
  const sent = [];
  mockIPC((cmd, args) => {
    if (cmd.startsWith('plugin:event|')) return 1;
    sent.push([cmd.replace('plugin:polar-license|', ''), args]);
    if (cmd.endsWith('seat_acquire')) return info(1000);
    if (cmd.endsWith('seat_release')) return { released: true };
    throw new Error(cmd);
  }, { shouldMockEvents: true });
  try {
    const controller = new AbortController();
    const held = await guest.seat({ key: 'K', ci: false, signal: controller.signal });
    assert.deepEqual(sent, [['seat_acquire', { key: 'K', ci: false }]]);
    assert.equal(held.state, 'held');
    mock.timers.tick(1_000_000);
    await settle();
    assert.equal(sent.length, 1, 'no heartbeat from the package: the plugin keeps the seat');
    controller.abort();
    controller.abort();
    await settle();
    assert.deepEqual(sent.at(-1), ['seat_release', { seat: SEAT }], 'the abort released the seat');
    assert.deepEqual(await held.release(), { released: true });
    assert.deepEqual(sent.filter(([c]) => c === 'seat_release'), [['seat_release', { seat: SEAT }]]);
    assert.equal(held.state, 'released');
  } finally {
    clearMocks();
    mock.timers.reset();
  }
});

test("the plugin's seat-ended event: onLost once with seat_lost for this seat (another seat's end ignored), state lost", async () => {
  mockIPC((cmd) => {
    if (cmd.startsWith('plugin:event|')) return 1;
    if (cmd.endsWith('seat_acquire')) return info(1000);
    if (cmd.endsWith('seat_release')) return { released: false };
    throw new Error(cmd);
  }, { shouldMockEvents: true });
  try {
    const lost = [];
    const held = await guest.seat({ onLost: (e) => lost.push(e) });
    await emit(guest.SEAT_ENDED_EVENT, { seat: 'another-seat', state: 'lost', error: lostError });
    await settle();
    assert.deepEqual(lost, [], "another seat's end");
    assert.equal(held.state, 'held');
    await emit(guest.SEAT_ENDED_EVENT, { seat: SEAT, state: 'lost', error: lostError });
    await settle();
    assert.equal(lost.length, 1);
    assert.ok(lost[0] instanceof guest.SeatError && lost[0].gone, String(lost[0]));
    assert.equal(lost[0].code, 'seat_lost');
    assert.equal(held.state, 'lost');
    await emit(guest.SEAT_ENDED_EVENT, { seat: SEAT, state: 'gone', error: gone });
    await settle();
    assert.equal(lost.length, 1, 'onLost once');
  } finally {
    clearMocks();
  }
});

test('a full pool rejects with a SeatError carrying the count and the time; an aborted signal acquires nothing', async () => {
  const full = { ...gone, code: 'seats_full', userMessage: 'Every seat of this license is in use (1 of 1).', inUse: 1, size: 1, freesAt: 1234, gone: false };
  const sent = [];
  mockIPC((cmd) => {
    if (cmd.startsWith('plugin:event|')) return 1;
    sent.push(cmd);
    throw full;
  }, { shouldMockEvents: true });
  try {
    const e = await guest.seat({ key: 'K' }).then(assert.fail, (e) => e);
    assert.ok(e instanceof guest.SeatError);
    assert.deepEqual([e.code, e.inUse, e.size, e.freesAt], ['seats_full', 1, 1, 1234]);
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(guest.seat({ key: 'K', signal: controller.signal }));
    assert.equal(sent.length, 1);
  } finally {
    clearMocks();
  }
});
