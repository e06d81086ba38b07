// Types of polar-license/seat (issue #67 item 5), checked by tsc against the installed tarball
// (scripts/test-wasm.sh's npm-types): hold a seat with an AbortSignal, read seats_full and a
// lost seat; the @ts-expect-error lines are mistakes the types must refuse.
import { LicenseClient } from 'polar-license';
import { Seats, SeatError, seats, type HeldSeat, type SeatInfo, type SeatReleased } from 'polar-license/seat';

// The key a LicenseClient remembers.
async function remembered(client: LicenseClient, signal: AbortSignal): Promise<HeldSeat> {
  return seats({ organizationId: '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10', relay: 'https://relay.example.com', relayKeys: ['relay-2026=k4.public.ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ'], client }).seat({ signal });
}
void remembered;

async function floating(key: string): Promise<string> {
  const ctl = new AbortController();
  const s: Seats = seats({ organizationId: '2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10', relay: 'https://relay.example.com', relayKeys: 'relay-2026=k4.public.ebVWLo_mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ', graceMs: 0, timeoutMs: 10_000 });
  try {
    const held: HeldSeat = await s.seat({
      key,
      ci: false,
      signal: ctl.signal,
      onLost: (e: SeatError) => {
        const gone: boolean = e.gone;
        const endedAt: number | undefined = e.endedAt;
        void [gone, endedAt];
      },
    });
    const info: SeatInfo = held.info;
    const until: number = held.expiresAt;
    const state: 'held' | 'lost' | 'gone' | 'released' = held.state;
    const ends: number = info.endsAtMs;
    void ends;
    ctl.abort();
    const back: SeatReleased = await held.release();
    return [held.id, info.heartbeatMs, until, state, back.released].join(' ');
  } catch (e) {
    if (e instanceof SeatError && e.code === 'seats_full') {
      const inUse: number | null = e.inUse;
      const size: number | null = e.size;
      const freesAt: number | null = e.freesAt;
      return `${inUse} of ${size}, free at ${freesAt}: ${e.userMessage}`;
    }
    throw e;
  }
}
void floating;

// @ts-expect-error: the relay is required
new Seats({ organizationId: 'x', relayKeys: 'k' });
// @ts-expect-error: the relay's keys are required (issue #76: no seat without them)
new Seats({ organizationId: 'x', relay: 'y' });
// @ts-expect-error: the key is a string
void seats({ organizationId: 'x', relay: 'y', relayKeys: 'k' }).seat({ key: 42 });
// @ts-expect-error: the client is a LicenseClient
void seats({ organizationId: 'x', relay: 'y', relayKeys: 'k', client: {} });
// @ts-expect-error: onLost takes an error
void seats({ organizationId: 'x', relay: 'y', relayKeys: 'k' }).seat({ key: 'k', onLost: 42 });

// The relay's seat settings (polar-license/relay's `seats`), as `relay serve`'s flags.
import type { RelaySeatOptions } from 'polar-license/relay';
const settings: RelaySeatOptions = { seconds: 300, ciCap: 2, churn: 120, churnSeconds: 3600, activationChurn: 30, activationChurnSeconds: 3600, borrowDays: 7, perBenefit: { b: 5 } };
void settings;
// @ts-expect-error: borrowDays is a number of days
const badBorrow: RelaySeatOptions = { borrowDays: '7' };
void badBorrow;
