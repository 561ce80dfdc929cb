/*
 * For running the Windows agent under Wine 8 (Debian 12) in the tests only: Rust's
 * standard library draws randomness from ProcessPrng in bcryptprimitives.dll, which
 * every Windows 10 and 11 has and Wine 8 lacks. This stand-in gives the same call over
 * RtlGenRandom (advapi32's SystemFunction036). It is never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
