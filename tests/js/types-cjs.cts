// Type test of the CommonJS declarations (index.d.cts).
import api = require('polar-license');

export async function viaRequire(key: string): Promise<string> {
  const { LicenseClient, LicenseError } = await api.load();
  const client = new LicenseClient({ organizationId: '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10' });
  try {
    const { source, reason, cacheRefreshed } = await client.check(key);
    return cacheRefreshed ? source : `${source} (${reason ?? 'not refreshed'})`;
  } catch (err) {
    return err instanceof LicenseError ? err.code : 'unknown';
  }
}
