// Types of polar-license/usage (issue #68 item 3), checked by tsc against the installed tarball
// (scripts/test-wasm.sh's npm-types): report usage, read a duplicate, the balance and a refusal;
// the @ts-expect-error lines are mistakes the types must refuse.
import { recordUsage, UsageError, type UsageOptions, type UsageRecorded } from 'polar-license/usage';

async function report(key: string): Promise<number | null> {
  const options: UsageOptions = {
    organizationId: '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10',
    relay: 'https://relay.example.com',
    key,
    meter: 'ai_calls',
    units: 3,
    id: 'job-42',
    relayKeys: ['k1=k4.public.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
    timeoutMs: 10_000,
  };
  try {
    const done: UsageRecorded = await recordUsage(options);
    const again: boolean = done.duplicate;
    const id: string = done.id;
    void again;
    void id;
    return done.balance;
  } catch (e) {
    if (e instanceof UsageError) {
      const balance: number | null = e.balance;
      const sentAs: string = e.id;
      const wait: number | undefined = e.retryAfter;
      // (kind, detail and the words: AddOnErrorWords, merged into the class.)
      const words: string = `${e.kind}: ${e.detail} ${e.userMessage ?? ''} ${e.nextStep ?? ''} ${e.status ?? ''}`;
      void words;
      if (e.code === 'credits_exhausted' || e.code === 'usage_backlog') return balance;
      void sentAs;
      void wait;
    }
    throw e;
  }
}
void report;

// @ts-expect-error the meter is required
void recordUsage({ organizationId: 'o', relay: 'r', key: 'k', units: 1 });
// @ts-expect-error relay keys are strings
void recordUsage({ organizationId: 'o', relay: 'r', key: 'k', meter: 'm', units: 1, relayKeys: [7] });
// @ts-expect-error units are a number
void recordUsage({ organizationId: 'o', relay: 'r', key: 'k', meter: 'm', units: '1' });
async function wrong(): Promise<void> {
  const done = await recordUsage({ organizationId: 'o', relay: 'r', key: 'k', meter: 'm', units: 1 });
  // @ts-expect-error the balance may be null
  const n: number = done.balance;
  void n;
}
void wrong;
