import { activate, check, checkInBackground, deactivate, onChecked } from '@polar-license/tauri';

const $ = (id) => document.getElementById(id);

/** Shows a license state: what the user reads, and what it unlocks. */
function show(state) {
  if (state.licensed) {
    const offline = state.fallback
      ? ` (Polar unreachable: works offline until ${new Date(state.graceEndsAt * 1000).toLocaleDateString()})`
      : '';
    $('status').textContent = `Licensed: ${state.license.displayKey}${offline}`;
  } else {
    $('status').textContent = state.userMessage;
  }
  $('key-form').hidden = !state.needsKey && state.class !== 'denied';
  $('export').disabled = !state.features.export?.granted;
  $('deactivate').hidden = !state.licensed;
}

// A background check's fresh answer (Polar asked while the app started from the cache).
await onChecked(show);
// At launch: at once from the cache; the first run asks for a key (state.needsKey).
show(await checkInBackground());

$('key-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('error').textContent = '';
  try {
    await activate($('key').value.trim());
    show(await check());
  } catch (error) {
    // A LicenseError: its code (not_found, activation_limit, offline, …) and a sentence.
    $('error').textContent = error.userMessage ?? String(error);
  }
});

$('deactivate').addEventListener('click', async () => {
  await deactivate();
  show(await check());
});
