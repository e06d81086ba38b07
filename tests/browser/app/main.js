// The e2e page: imports the package through Vite, activates and validates a key against the
// emulator named in the query string (?api=…&org=…&key=…), and writes the outcome on the page.
import { LicenseClient, LicenseError } from 'polar-license';

const params = new URLSearchParams(location.search);
const status = document.querySelector('#status');

async function main() {
  const client = new LicenseClient({ organizationId: params.get('org'), baseUrl: params.get('api') });
  const key = params.get('key');
  try {
    const { activation } = await client.activate(key, { label: 'e2e browser' });
    const { license } = await client.validate(key, { activationId: activation.id });
    const { source } = await client.check(key);
    const stored = Object.keys(localStorage).filter((k) => k.startsWith('polar-license.')).length;
    status.textContent =
      `activated ${activation.id}; validated ${license.displayKey} (${license.status}); ` +
      `check: licensed (${source}); ${stored} entries in localStorage`;
    status.className = 'ok';
  } catch (err) {
    status.textContent = err instanceof LicenseError ? `not licensed: ${err.code}: ${err.detail}` : `error: ${err}`;
    status.className = 'fail';
  }
}

main();
