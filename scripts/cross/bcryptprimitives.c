/* Wine 8 has no bcryptprimitives.dll, whose ProcessPrng the Rust standard library calls at
 * start-up on Windows. This stand-in forwards to advapi32's SystemFunction036 (RtlGenRandom),
 * which Wine has. Built with mingw by scripts/cross.sh into the Wine prefix of the tests only. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG part = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, part)) {
            return FALSE;
        }
        data += part;
        length -= part;
    }
    return TRUE;
}
