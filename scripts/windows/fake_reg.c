/*
 * A planted `reg.exe` for tests/windows_machine_id.rs (built by scripts/test-windows.sh): it
 * answers any query with an attacker's MachineGuid, in reg.exe's own output format. A client
 * that spawned `reg` would find this one first in the application's directory and take its id.
 */
#include <stdio.h>

int main(void) {
  printf("\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Cryptography\r\n"
         "    MachineGuid    REG_SZ    00000000-0000-4000-8000-00000000bad0\r\n\r\n");
  return 0;
}
