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

// The named imports of a TypeScript project that emits CommonJS (an Electron main process):
// `require('polar-license')` at run time, so they must be index.d.cts's names (issue #27).
import { LicenseClient, LicenseError, REASONS, type CheckResultData, type LicenseErrorData } from 'polar-license';

export async function viaNamedImport(key: string): Promise<CheckResultData | LicenseErrorData> {
  const client: LicenseClient = new LicenseClient({ organizationId: '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10' });
  try {
    return (await client.check(key)).toJSON();
  } catch (err) {
    if (!(err instanceof LicenseError)) throw err;
    const data: LicenseErrorData = err.toJSON();
    const kind: 'denied' | 'unverified' | 'error' = REASONS[data.code];
    return { ...data, kind };
  }
}

export function graceEnd(data: CheckResultData): [number, boolean] {
  return [data.graceEndsAt, data.features['export_pdf']?.granted ?? false];
}
