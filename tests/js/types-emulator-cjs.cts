// Type test of the CommonJS declarations of `polar-license/emulator` (emulator.d.cts).
import emulator = require('polar-license/emulator');

export async function viaRequire(): Promise<string> {
  const polar = await emulator.startEmulator({ port: 0 });
  await polar.close();
  return polar.url;
}
