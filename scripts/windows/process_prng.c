/*
 * A stand-in bcryptprimitives.dll for running the project's Windows builds under Debian's
 * wine 8 in tests only (scripts/test-windows.sh): Rust's std (1.78 and later) imports
 * bcryptprimitives.dll!ProcessPrng, which Windows 10 and later have and wine 8 lacks, so
 * without it no Rust program starts there. It answers ProcessPrng with RtlGenRandom
 * (advapi32!SystemFunction036), the system's own CSPRNG. Never shipped: on Windows the real
 * DLL is used.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
  while (length > 0) {
    ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
    if (!SystemFunction036(data, chunk)) return FALSE;
    data += chunk;
    length -= chunk;
  }
  return TRUE;
}
