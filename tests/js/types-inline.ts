// Type test of `polar-license/inline` (inline.d.ts, ESM) and its CommonJS loader (inline.d.cts
// through types-cjs.cts's sibling below): the same API as the default entry.
import { LicenseClient, LicenseError, init, type CheckResult, type ReasonCode } from 'polar-license/inline';

export async function inlineCheck(key: string): Promise<ReasonCode | 'licensed'> {
  await init();
  const client = new LicenseClient({ organizationId: '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10', timeout: 5 });
  try {
    const result: CheckResult = await client.check(key);
    return result.hasFeature('export').granted ? 'licensed' : 'licensed';
  } catch (err) {
    if (err instanceof LicenseError) return err.code;
    throw err;
  }
}

// @ts-expect-error: organizationId is required
new LicenseClient({ timeout: 5 });
