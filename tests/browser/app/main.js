// The e2e page: imports the package through Vite, activates and validates a key against the
// emulator named in the query string (?api=…&org=…&key=…&benefit=…), asks the verdict for a
// feature that benefit grants and one it does not, and writes the outcome on the page.
import { LicenseClient, LicenseError } from 'polar-license';

const params = new URLSearchParams(location.search);
const status = document.querySelector('#status');

async function main() {
  const client = new LicenseClient({
    organizationId: params.get('org'),
    baseUrl: params.get('api'),
    features: { pro: [params.get('benefit')], team: ['1c2d3e4f-5061-4b7c-9d8e-0f1a2b3c4d5e'] },
  });
  const key = params.get('key');
  try {
    const { activation } = await client.activate(key, { label: 'e2e browser' });
    const { license } = await client.validate(key, { activationId: activation.id });
    const verdict = await client.check(key);
    const { source } = verdict;
    const pro = verdict.hasFeature('pro');
    const team = verdict.hasFeature('team');
    const stored = Object.keys(localStorage).filter((k) => k.startsWith('polar-license.')).length;
    status.textContent =
      `activated ${activation.id}; validated ${license.displayKey} (${license.status}); ` +
      `check: licensed (${source}); pro: ${pro.granted} (${pro.why}), team: ${team.granted} (${team.why}); ` +
      `${stored} entries in localStorage`;
    status.className = 'ok';
  } catch (err) {
    status.textContent = err instanceof LicenseError ? `not licensed: ${err.code}: ${err.detail}` : `error: ${err}`;
    status.className = 'fail';
  }
}

main();
