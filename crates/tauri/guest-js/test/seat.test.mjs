// seat(): the package's only part of issue #67's seats that is not the plugin's: the heartbeat
// scheduled every `heartbeatEvery` seconds the plugin answered, the release on the AbortSignal
// (once), and `onLost` when the plugin says the seat is gone. Tauri's IPC mocked, its timers
// node's mock timers.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';

globalThis.window = globalThis;
const { mockIPC, clearMocks } = await import('@tauri-apps/api/mocks');
const guest = await import('../index.js');

const SEAT = '6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b';
const info = (expiresAt) => ({ id: SEAT, ci: false, expiresAt, heartbeatEvery: 100, inUse: 1, size: 1 });
const gone = {
  code: 'seat_gone', class: 'denied', userMessage: 'This seat was freed', detail: 'seat_gone', hint: null,
  field: null, status: null, retryAfter: null, remainingUsages: null, inUse: null, size: null, freesAt: null, gone: true,
};
const offline = { ...gone, code: 'offline', class: 'unverified', userMessage: 'offline', gone: false };

/** Lets the promise callbacks queued by a timer run. */
const settle = () => new Promise((r) => setImmediate(r));

test('seat() heartbeats every heartbeatEvery seconds and releases once when the signal aborts', async () => {
  mock.timers.enable({ apis: ['setInterval'] });
  const sent = [];
  let expires = 1000;
  mockIPC((cmd, args) => {
    sent.push([cmd.replace('plugin:polar-license|', ''), args]);
    if (cmd.endsWith('seat_acquire')) return info(expires);
    if (cmd.endsWith('seat_heartbeat')) return info((expires += 100));
    if (cmd.endsWith('seat_release')) return { released: true };
    throw new Error(cmd);
  });
  try {
    const controller = new AbortController();
    const held = await guest.seat({ key: 'K', ci: false, signal: controller.signal });
    assert.deepEqual(sent, [['seat_acquire', { key: 'K', ci: false }]]);
    mock.timers.tick(99_000);
    await settle();
    assert.equal(sent.length, 1, 'no heartbeat before heartbeatEvery');
    mock.timers.tick(1_000);
    await settle();
    assert.deepEqual(sent.at(-1), ['seat_heartbeat', { seat: SEAT }]);
    assert.equal(held.info.expiresAt, 1100);
    mock.timers.tick(100_000);
    await settle();
    assert.equal(sent.filter(([c]) => c === 'seat_heartbeat').length, 2);
    controller.abort();
    controller.abort();
    await settle();
    assert.deepEqual(sent.at(-1), ['seat_release', { seat: SEAT }], 'the abort released the seat');
    assert.deepEqual(await held.release(), { released: true });
    assert.deepEqual(sent.filter(([c]) => c === 'seat_release'), [['seat_release', { seat: SEAT }]]);
    mock.timers.tick(1_000_000);
    await settle();
    assert.equal(sent.filter(([c]) => c === 'seat_heartbeat').length, 2, 'no heartbeat after the release');
  } finally {
    clearMocks();
    mock.timers.reset();
  }
});

test('a relay out of reach keeps beating; a seat gone stops and calls onLost once', async () => {
  mock.timers.enable({ apis: ['setInterval'] });
  const answers = [offline, gone];
  const sent = [];
  mockIPC((cmd) => {
    sent.push(cmd);
    if (cmd.endsWith('seat_acquire')) return info(1000);
    if (cmd.endsWith('seat_heartbeat')) throw answers.shift();
    throw new Error(cmd);
  });
  try {
    const lost = [];
    await guest.seat({ onLost: (e) => lost.push(e) });
    mock.timers.tick(100_000);
    await settle();
    assert.deepEqual(lost, []);
    mock.timers.tick(100_000);
    await settle();
    assert.equal(lost.length, 1);
    assert.ok(lost[0] instanceof guest.SeatError && lost[0].gone);
    mock.timers.tick(500_000);
    await settle();
    assert.equal(sent.filter((c) => c.endsWith('seat_heartbeat')).length, 2);
  } finally {
    clearMocks();
    mock.timers.reset();
  }
});

test('a full pool rejects with a SeatError carrying the count and the time; an aborted signal acquires nothing', async () => {
  const full = { ...gone, code: 'seats_full', userMessage: 'Every seat of this license is in use (1 of 1).', inUse: 1, size: 1, freesAt: 1234, gone: false };
  const sent = [];
  mockIPC((cmd) => {
    sent.push(cmd);
    throw full;
  });
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
