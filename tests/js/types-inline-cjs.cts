// Type test of the CommonJS declarations of `polar-license/inline` (inline.d.cts).
import inline = require('polar-license/inline');

export async function inlineViaRequire(key: string): Promise<string> {
  const { LicenseClient, LicenseError } = await inline.load();
  const client = new LicenseClient({ organizationId: '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10' });
  try {
    return (await client.validate(key)).license.status;
  } catch (err) {
    return err instanceof LicenseError ? err.code : 'unknown';
  }
}
