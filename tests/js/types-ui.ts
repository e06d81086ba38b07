// Types of polar-license/ui (the activation screen), checked by tsc against the installed
// tarball (scripts/test-wasm.sh's npm-types): a page that makes the element, hands it a
// LicenseClient or a bridge of its own, sets its strings and reads its events.
import { DEFAULT_STRINGS, PolarLicenseGate, redactKey, type GateChangeDetail, type GateClient, type GateDevices, type GateState, type GateStep } from 'polar-license/ui';
import { LicenseClient, type StopKind } from 'polar-license';
import { Devices } from 'polar-license/devices';

const gate: PolarLicenseGate = document.createElement('polar-license-gate');
gate.setAttribute('portal-url', 'https://polar.sh/example/portal');
gate.client = new LicenseClient({ organizationId: '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10', rememberKeys: true });
gate.options = { organizationId: '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10' };
gate.strings = { title: 'Lizenz aktivieren', locale: 'de' };
const title: string = gate.strings.title;
const english: string = DEFAULT_STRINGS.activate;
// A reason's words are the core's (the refusal's userMessage) unless the app sets its own.
gate.strings = { title: 'Lizenz aktivieren', activation_limit: 'Zu viele Geräte.' };
const ownWords: string | undefined = gate.strings.activation_limit;
const shown: string = redactKey('DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A');

// A bridge to a main process (no rememberedKey: checked and deactivated with no key).
const bridge: GateClient = {
  activate: async (_key, { label }) => ({ activation: { label } }),
  check: async () => ({ source: 'online', graceRemaining: null, reason: null, license: { displayKey: '****-4C5B6A' } }),
  deactivate: async () => undefined,
};
gate.client = bridge;

gate.addEventListener('polar-license-change', (event) => {
  const detail: GateChangeDetail = event.detail;
  const state: GateState = detail.state;
  if (detail.licensed && detail.license) {
    const until: string | undefined = detail.license.until?.at;
    const grace: number | null = detail.license.graceRemaining;
    console.log(state, detail.license.key, until, grace, detail.reason);
  }
});

void gate.activate('DEMO-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A');
void gate.refresh();
void gate.deactivate();
const reason: string | null = gate.reason;
console.log(title, english, ownWords, shown, reason);

// @ts-expect-error: the state is read-only
gate.state = 'licensed';

// Why a key stopped (issue #68): the seller's relay's detail of a refusal, and its words.
const stopKind: StopKind | undefined = gate.stopped?.kind;
const resumes: number | null | undefined = gate.stopped?.until;
// The library's sentence by default (the refusal's userMessage): no English string of the gate's.
const pausedWords: string | undefined = DEFAULT_STRINGS.stopped_paused_until;
gate.strings = { stopped_rotated: 'Neuer Schlüssel im Kundenportal.' };
gate.addEventListener('polar-license-change', (event) => console.log(event.detail.stopped?.at));
// @ts-expect-error: read-only
gate.stopped = null;
console.log(stopKind, resumes, pausedWords);
// The licensed, offline, deactivated and empty-list words are the library's too (issue #80):
// optional, the app's own only when set.
const licensedWords: string | undefined = DEFAULT_STRINGS.licensed;
gate.strings = { offlineGrace: 'Offline: noch {grace}.', noDevices: 'Keine Geräte für {key}.' };
console.log(licensedWords);

// "Free a seat" and "Lost your key?" (issue #64): polar-license/devices' Devices, or this shape.
gate.devices = new Devices({ organizationId: '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10' });
const own: GateDevices = {
  signedIn: false,
  requestCode: async () => undefined,
  signIn: async () => undefined,
  list: async () => ({ keyId: 'k', limitActivations: 2, devices: [{ id: 'a', label: 'Old laptop', activatedAt: 0, thisMachine: false, platform: null, lastSeen: null }] }),
  free: async () => undefined,
  recover: async () => [],
};
gate.devices = own;
// Key recovery's list names each key's product by its benefit (issue #80).
gate.products = { '5b1d9c7e-3a2f-4e6d-8c9b-1a2b3c4d5e6f': 'Pro' };
const proName: string | undefined = gate.products['5b1d9c7e-3a2f-4e6d-8c9b-1a2b3c4d5e6f'];
const alike: string = DEFAULT_STRINGS.thisDevice + DEFAULT_STRINGS.lastSeen + DEFAULT_STRINGS.deviceId + DEFAULT_STRINGS.createdOn;
console.log(proName, alike);
gate.strings = { freeSeat: 'Platz freigeben', lostKey: 'Schlüssel verloren?', tryAgain: 'Erneut mit {key}' };
void gate.freeSeat();
void gate.recoverKey();
// Buying in the app (issue #80): the checkout made for this purchase, then "Buy a license".
gate.checkout = async () => 'https://polar.sh/checkout/polar_c_example';
// Called with the gate's devices: the seller's relay makes the checkout.
gate.checkout = (devices) => devices.openRelayCheckout('3f9e1c2d-7b4a-4e8f-9a1b-2c3d4e5f6a7b', { metadata: { app_version: '1.4.2' } });
void gate.buy();
gate.checkout = null;
// @ts-expect-error: a checkout link as a string is not a checkout (a page cannot follow its redirect)
gate.checkout = 'https://buy.polar.sh/polar_cl_example';
gate.addEventListener('polar-license-change', ({ detail }) => {
  const step: GateStep | undefined = detail.step;
  if (detail.state === 'free-seat' && detail.reason === 'code_invalid_or_expired') console.log(step);
  if (detail.state === 'buy' && detail.step === 'code') console.log(DEFAULT_STRINGS.buyAgain);
});
// @ts-expect-error: a devices object needs the list and free calls
gate.devices = { signedIn: false };
