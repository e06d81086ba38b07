// Type test of the published declarations: compiled with `tsc --noEmit` against the installed
// tarball (scripts/test-wasm.sh, npm-types). Every `@ts-expect-error` must be an error.
import {
  LicenseClient,
  LicenseError,
  REASONS,
  init,
  type ActivateResult,
  type CacheStatus,
  type CheckResult,
  type CheckResultData,
  type Lease,
  type LicenseErrorData,
  type DenialCode,
  type EntitlementValue,
  type FallbackCode,
  type FeatureAccess,
  type FeatureMap,
  type FeatureWhy,
  type License,
  type ReasonCode,
  type ReasonKind,
  type StorageAdapter,
  type StopKind,
  type Stopped,
  type UnverifiedCode,
  type ValidateResult,
} from 'polar-license';
import { createNodeListener, createRelay, importSigningKey, type RelayOptions, type RelaySigner } from 'polar-license/relay';

const map = new Map<string, string>();
const storage: StorageAdapter = {
  get: (name) => map.get(name) ?? null,
  set: async (name, value) => {
    map.set(name, value);
  },
  remove: (name) => {
    map.delete(name);
  },
};

const client = new LicenseClient({
  organizationId: '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10',
  server: 'sandbox',
  timeout: 5,
  gracePolicy: { revalidateAfter: 60, gracePeriod: 86400, clockTolerance: 60 },
  storage,
  appSecret: 's',
  machineId: 'm',
  requireActivation: true,
  clock: () => Date.now(),
});
new LicenseClient({ organizationId: 'x', storage: 'localStorage' });
// Perpetual fallback: the build's release date.
new LicenseClient({ organizationId: 'x', released: '2026-10-01' });
// @ts-expect-error the release date is a 'YYYY-MM-DD' string
new LicenseClient({ organizationId: 'x', released: 20261001 });
// Trials: one trial benefit id or a list.
new LicenseClient({ organizationId: 'x', trialBenefit: 'b' });
new LicenseClient({ organizationId: 'x', trialBenefit: ['b', 'c'] });
// @ts-expect-error a benefit id is a string
new LicenseClient({ organizationId: 'x', trialBenefit: 5 });
// A local trial of N days; a check with no key rejects with its `trial`.
const trialing = new LicenseClient({ organizationId: 'x', trial: 14 });
// @ts-expect-error the days are a number
new LicenseClient({ organizationId: 'x', trial: '14' });
trialing.check().catch((err: unknown) => {
  if (err instanceof LicenseError && err.trial?.state === 'active') {
    const left: number = err.trial.daysLeft;
    const ends: number | null = err.trial.endsAt;
    const paid: number | null | undefined = err.paidThrough;
    void [left, ends, paid];
  }
});
// The global fetch (Electron's net.fetch has its type) and a wrapper of it are both a `fetch`.
new LicenseClient({ organizationId: 'x', fetch: globalThis.fetch });
new LicenseClient({ organizationId: 'x', fetch: (url, init) => fetch(url, init) });
// @ts-expect-error fetch is a function
new LicenseClient({ organizationId: 'x', fetch: 'https://proxy.example' });
new LicenseClient({ organizationId: 'x', storage: 'memory', baseUrl: 'http://127.0.0.1:8080' });

const features: FeatureMap = {
  pro_export: ['0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d'],
  api_calls: { benefits: ['0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d'], metered: true },
  sync: { benefits: ['0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d'] },
};
const gated = new LicenseClient({ organizationId: 'x', features });
// @ts-expect-error an entry is a list of benefit ids or { benefits, metered? }
new LicenseClient({ organizationId: 'x', features: { pro: 'uuid' } });
// @ts-expect-error metered is a boolean
new LicenseClient({ organizationId: 'x', features: { pro: { benefits: ['uuid'], metered: 'yes' } } });

export async function gating(key: string): Promise<boolean> {
  const verdict: CheckResult = await gated.check(key);
  const access: FeatureAccess = verdict.hasFeature('pro_export');
  const viaClient: FeatureAccess = await gated.hasFeature(key, 'api_calls');
  const online: FeatureAccess = (await gated.validate(key)).hasFeature('sync');
  const left: number | null = viaClient.remainingUsage;
  if (access.granted) {
    const why: 'granted' = access.why;
    const source: 'online' | 'cache' = access.source;
    const reason: null = access.licenseReason;
    void [why, source, reason];
  } else {
    const why: Exclude<FeatureWhy, 'granted'> = access.why;
    const reason: DenialCode | UnverifiedCode | null = access.licenseReason;
    const source: 'online' | 'cache' | null = access.source;
    void [why, reason, source];
  }
  // @ts-expect-error hasFeature needs a name
  verdict.hasFeature();
  // @ts-expect-error client.hasFeature needs the key and the name
  await gated.hasFeature('pro_export');
  // @ts-expect-error why codes are a closed union
  const bad: FeatureWhy = 'revoked';
  void [online, left, bad];
  // Issue #68: entitlement values, read offline from the signed lease.
  const values: Record<string, EntitlementValue> | null = verdict.entitlements;
  const value: EntitlementValue | undefined | null = gated.entitlement('max_upload_size');
  if (typeof value === 'number') void (value + 1);
  // @ts-expect-error a value is a string, number or boolean, not always a string
  const text: string = gated.entitlement('role');
  // @ts-expect-error entitlement needs a name
  gated.entitlement();
  void [values, text];
  return access.granted;
}

// @ts-expect-error organizationId is required
new LicenseClient({ server: 'production' });
// @ts-expect-error only production or sandbox (use baseUrl for anything else)
new LicenseClient({ organizationId: 'x', server: 'staging' });
// @ts-expect-error storage strings are 'file', 'localStorage' or 'memory'
new LicenseClient({ organizationId: 'x', storage: 'disk' });
new LicenseClient({ organizationId: 'x', storage: 'file', cacheDir: '/tmp/cache', appId: 'com.example.editor' });

export async function usage(key: string): Promise<void> {
  await init();
  const v: ValidateResult = await client.validate(key, { incrementUsage: 1, conditions: { seat: 1, pro: true } });
  const license: License = v.license;
  const left: number | null = license.limitUsage === null ? null : license.limitUsage - license.usage;
  const a: ActivateResult = await client.activate(key, { label: 'x', meta: { version: '1.0' } });
  const id: string = a.activation.id;
  const c: CheckResult = await client.check(key);
  // The remembered key (rememberKeys, rememberKey): check() with no key.
  await client.rememberKey(key);
  const remembered: string | null = await client.rememberedKey();
  const again: CheckResult = await client.check();
  await client.forgetKey();
  const now: CheckResult = await client.checkInBackground(key, (error, fresh) => {
    const code: ReasonCode | undefined = error?.code;
    const later: boolean | undefined = fresh?.license.status === 'granted';
    void code;
    void later;
  });
  const pending: boolean | undefined = now.pending;
  const remembering = new LicenseClient({ organizationId: 'org', rememberKeys: true });
  // @ts-expect-error rememberedKey takes no argument
  await remembering.rememberedKey(key);
  const source: 'online' | 'cache' = c.source;
  const grace: number | null = c.graceRemaining;
  const why: FallbackCode | null = c.reason;
  const portal: FallbackCode = 'protocol_error';
  const refreshed: boolean = c.cacheRefreshed;
  const fellBack: boolean | undefined = c.fallback;
  const paidThrough: number | null | undefined = c.paidThrough;
  const trialEnds: number | null | undefined = c.trial?.endsAt;
  const trialState: 'active' | 'ended' | 'refused' | undefined = c.trial?.state;
  // @ts-expect-error the days left are a number
  const trialDays: string | undefined = c.trial?.daysLeft;
  // @ts-expect-error a denial is never why the cache answered
  const denial: FallbackCode = 'inactive';
  const s: CacheStatus = await client.status(key);
  const state: 'empty' | 'untrusted' | 'present' = s.state;
  const replayed: CacheStatus['untrusted'] = 'replayed';
  const denied: DenialCode | undefined = s.denied?.code;
  // Signed mode (issue #25): relayKeys as an array or one string; the verified stored lease.
  const signed = new LicenseClient({ organizationId: 'org', relayKeys: ['relay-2026=k4.public.x'] });
  new LicenseClient({ organizationId: 'org', relayKeys: 'a=k4.public.x,b=k4.public.y' });
  // @ts-expect-error relay keys are strings
  new LicenseClient({ organizationId: 'org', relayKeys: [42] });
  const leaseEnd: number | undefined = s.lease?.expiresAt;
  const leaseKid: string | undefined = (await signed.check(key)).lease?.kid;
  const activatedLease: Lease | null = (await signed.activate(key)).lease;
  const validatedLease: Lease | null = (await signed.validate(key)).lease;
  const d = await client.deactivate(key, { activationId: id });
  const freed: string = d.activationId;
  await client.forget(key);
  // @ts-expect-error results are camelCase
  license.display_key;
  // @ts-expect-error incrementUsage is a number
  await client.validate(key, { incrementUsage: '1' });
  void [left, source, grace, why, portal, refreshed, denial, state, replayed, denied, freed];
}

export function handle(err: unknown): ReasonKind | undefined {
  if (err instanceof LicenseError) {
    const code: ReasonCode = err.code;
    const kind: ReasonKind = REASONS[code];
    const extra: number | undefined = err.status ?? err.retryAfter ?? err.remainingUsages;
    const field: string | undefined = err.field;
    const notRefreshed: false | undefined = err.cacheRefreshed;
    const stopped: Stopped | undefined = err.stopped;
    const resumes: number | null | undefined = stopped?.kind === 'paused' ? stopped.until : undefined;
    const kindOf: StopKind | undefined = err.toJSON().stopped?.kind;
    void [resumes, kindOf];
    // @ts-expect-error the detail's kinds are a closed union
    const unknownKind: StopKind = 'gone_fishing';
    void unknownKind;
    const load: ReasonCode = 'load_error';
    void [notRefreshed, load];
    const base: Error = err;
    void [extra, field, base];
    // @ts-expect-error codes are a closed union
    const bad: ReasonCode = 'revoked';
    void bad;
    return kind;
  }
  return undefined;
}

// Plain data for IPC (toJSON): what a renderer receives.
export async function plain(client: LicenseClient, key: string): Promise<CheckResultData | LicenseErrorData> {
  try {
    const data: CheckResultData = (await client.check(key)).toJSON();
    const access: FeatureAccess | undefined = data.features['export_pdf'];
    const graceEnd: number = data.graceEndsAt;
    // @ts-expect-error: plain data has no methods
    data.hasFeature('export_pdf');
    return access?.granted && graceEnd > 0 ? data : { ...data, features: {} };
  } catch (err) {
    if (!(err instanceof LicenseError)) throw err;
    const data: LicenseErrorData = err.toJSON();
    const code: ReasonCode = data.code;
    const hint: string | undefined = data.hint;
    // @ts-expect-error: plain data has no methods
    data.toJSON();
    return hint === undefined ? { ...data, code } : data;
  }
}

// polar-license/relay: the handler's options and shapes.
export async function relayTypes(text: string, request: Request): Promise<Response> {
  const options: RelayOptions = { accessToken: 'polar_oat_x', signingKey: text, perKey: '3/6', leaseDays: 7 };
  // @ts-expect-error: the token is required
  createRelay({ signingKey: text });
  // @ts-expect-error: server is production or sandbox
  createRelay({ ...options, server: 'staging' });
  createRelay({ ...options, server: 'sandbox', corsOrigins: ['https://app.example.com'], store: { budget: 100 } });
  // @ts-expect-error: corsOrigins is a list of origins
  createRelay({ ...options, corsOrigins: 'https://app.example.com' });
  const signer: RelaySigner = await importSigningKey(text);
  const relay = createRelay({ ...options, signingKey: signer, clientIp: (r) => r.headers.get('x-real-ip') });
  const ready: { kid: string; publicKey: string } = await relay.ready();
  const listener: (req: unknown, res: unknown) => void = createNodeListener(relay);
  void ready;
  void listener;
  return relay.fetch(request);
}
