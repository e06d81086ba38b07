// Types of polar-license/devices (issue #64), checked by tsc against the installed tarball
// (scripts/test-wasm.sh's npm-types): sign in, list a key's devices, free one, and read a
// typed failure; the @ts-expect-error lines are mistakes the types must refuse.
import { Devices, DevicesError, devices, type Device, type DeviceList, type Followed, type RecoverableKey } from 'polar-license/devices';
import { LicenseClient } from 'polar-license';

async function outOfActivations(key: string, here: string | null): Promise<string[]> {
  const d: Devices = devices({ organizationId: '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10', server: 'sandbox', timeoutMs: 10_000 });
  await d.requestCode('jane@example.com');
  await d.requestCode('jane@example.com', { customerId: '8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d' });
  await d.signIn('ab12cd');
  const signed: boolean = d.signedIn;
  try {
    const list: DeviceList = await d.list(key, { activationId: here });
    const limit: number | null = list.limitActivations;
    const other: Device | undefined = list.devices.find((x) => !x.thisMachine);
    if (other) await d.free(key, other.id);
    const when: number = list.devices[0]?.activatedAt ?? 0;
    return [String(signed), String(limit), String(when), list.keyId];
  } catch (e) {
    if (e instanceof DevicesError) {
      const wait: number | null | undefined = e.retryAfter;
      const reason: string | null = e.reason;
      if (e.code === 'session_expired' || e.code === 'device_management_off') return [e.message, String(wait), String(reason)];
    }
    throw e;
  } finally {
    d.signOut();
  }
}
void outOfActivations;

// @ts-expect-error: the organization is required
new Devices({});
// @ts-expect-error: list takes the key as a string
void devices({ organizationId: 'x' }).list(42);

// Key recovery: the display form to show, the whole key (read-only) only for the activation.
async function lostKey(d: Devices): Promise<string | undefined> {
  const keys: RecoverableKey[] = await d.recover();
  const first = keys[0];
  // None found: the library's words for it (issue #80).
  const none: string | undefined = (await d.recover()).userMessage;
  if (!first) return none;
  const shown: string = first.displayKey;
  const expires: number | null = first.expiresAt;
  const created: number = first.createdAt;
  // @ts-expect-error: the whole key is read-only
  first.key = 'x';
  return `${shown} ${expires} ${created} ${first.key.length}`;
}
void lostKey;

// A rotated key followed (issue #64 item 4) with the app's LicenseClient: the new key's display
// form to show, the whole new key (read-only) for the app's own checks.
async function rotated(d: Devices, client: LicenseClient): Promise<string> {
  const followed: Followed = await d.followRotation(client);
  const again = await d.followRotation(client, { key: 'OLD-KEY' });
  const kept: string | null = followed.activationId;
  const remembered: boolean = followed.remembered;
  // @ts-expect-error: the whole key is read-only
  followed.key = 'x';
  // @ts-expect-error: the client is required
  await d.followRotation();
  return `${kept} ${remembered} ${again.license.displayKey} ${followed.key.length}`;
}
void rotated;

// Signed mode (issue #80): one options object for the client, the devices and the gate, the
// portal at Polar; a checkout the seller's relay makes, its URL to open and follow.
async function signedPurchase(): Promise<string> {
  const options = {
    organizationId: '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10',
    baseUrl: 'https://relay.example.com',
    relayKeys: ['relay-2026=k4.public.zevIf5uXysdQewS3wkNUerMNt6DoYLb_3Nnw5jAcsXQ'],
    portalUrl: 'https://api.polar.sh',
  };
  const client = new LicenseClient({ ...options, storage: 'memory' });
  const d = new Devices(options);
  const url: string = await d.openRelayCheckout('3f9e1c2d-7b4a-4e8f-9a1b-2c3d4e5f6a7b', { metadata: { app_version: '1.4.2', seats: 3 }, email: 'a@example.com' });
  // @ts-expect-error: metadata values are strings, numbers or booleans
  await d.openRelayCheckout('3f9e1c2d-7b4a-4e8f-9a1b-2c3d4e5f6a7b', { metadata: { tags: ['a'] } });
  await d.buy(url, { client });
  return url;
}
void signedPurchase;
