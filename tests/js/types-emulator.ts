// Type test of `polar-license/emulator` (emulator.d.ts, emulator.d.cts through types-emulator-cjs.cts).
import { LicenseClient } from 'polar-license';
import { startEmulator, type Fault, type RunningEmulator, type Seed } from 'polar-license/emulator';

export async function tryLocally(): Promise<string> {
  const seed: Seed = {
    organization_id: '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10',
    license_keys: [{ key: 'K-1', limit_activations: 2, status: 'granted' }],
  };
  const polar: RunningEmulator = await startEmulator({ port: 0, host: '127.0.0.1', seed, rateLimit: false });
  const client = new LicenseClient({ organizationId: polar.organizationId, baseUrl: polar.url });
  const fault: Fault = { kind: 'delay', ms: 10 };
  polar.setFault(fault);
  polar.setFault(null);
  polar.addKey('K-2');
  const changed: boolean = polar.updateKey('K-2', { status: 'revoked', expires_at: null });
  const rotated: string | undefined = polar.rotateKey('K-1');
  const count: number = polar.requestCount();
  // @ts-expect-error: not a fault kind
  polar.setFault({ kind: 'explode' });
  // @ts-expect-error: the port is a number
  await startEmulator({ port: '8787' });
  const { source } = await client.check(polar.keys[0]);
  await polar.close();
  return `${source} ${changed} ${rotated ?? ''} ${count} ${polar.port}`;
}
