"""Is Intel AMX really usable here?  Three cheap checks and one real instruction.

What we found (2026-11, Firecracker VMs like the CI machines): some VMs show
``amx-tile``/``amx-int8`` in CPUID while the guest may not use tile state.  A
llama.cpp built with ``GGML_NATIVE=ON`` (the default: ``-march=native``)
compiles AMX kernels because gcc's ``-march=native`` trusts CPUID + XCR0, and
the first quantized decode dies with SIGILL at ``tilezero``.  Linux also
requires every process to ask for tile state with
``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`` before using it.

So the signals, from cheapest to surest:

1. CPUID leaf 7 EDX bit 24 (amx-tile): what the CPU (or hypervisor) advertises.
2. XCR0 bits 17 and 18: the kernel enabled tile state (gcc checks these too).
3. ``arch_prctl(ARCH_REQ_XCOMP_PERM, 18)`` returns 0: this process may use it.
4. ``ldtilecfg`` + ``tilezero`` + ``tilerelease`` in a child process exits 0.

On the 2026-11-22 CI VM (Firecracker, "Intel(R) Xeon(R) Processor") we found
no AMX at all: CPUID.(7,0):EDX = 0x20814010 (bits 22/24/25 clear), XCR0 = 0xe7,
no amx_* in /proc/cpuinfo, ``gcc -march=native`` = cooperlake without AMX, and
the tilezero child dies with SIGILL (-4).  So a native build there would use
AVX-512 (which works), not AMX; the AMX trap depends on the VM host.

CPUID and XGETBV never fault in user mode, so 1 and 2 run in-process from a
few bytes of machine code in an executable ``mmap``; 4 runs in a child process
because a SIGILL there must not kill us.  Everything returns ``None`` off
Linux x86-64 or when executable memory is refused.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import platform
import subprocess
import sys

from localchat.hardware.types import AmxStatus

SYS_ARCH_PRCTL = 158  # x86-64
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18
XCR0_TILE_BITS = (1 << 17) | (1 << 18)
CPUID7_EDX_AMX_TILE = 1 << 24

# push rbx; mov eax,7; xor ecx,ecx; cpuid; mov eax,edx; pop rbx; ret
_CPUID7_EDX_CODE = bytes.fromhex("53 b8 07 00 00 00 31 c9 0f a2 89 d0 5b c3")
# xor ecx,ecx; xgetbv; ret   (returns the low 32 bits of XCR0 in eax)
_XGETBV_CODE = bytes.fromhex("31 c9 0f 01 d0 c3")
# ldtilecfg [rdi]; tilezero tmm0; tilerelease; ret
_TILEZERO_CODE = bytes.fromhex("c4 e2 78 49 07 c4 e2 7b 49 c0 c4 e2 78 49 c0 c3")

PROBE_TIMEOUT_S = 10.0


def is_linux_x86_64() -> bool:
    return sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")


def _run_machine_code(code: bytes, *args: int) -> int | None:
    """Run ``code`` as ``uint32 f(void*)``; None where executable memory is refused."""
    try:
        region = mmap.mmap(
            -1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC
        )
    except (OSError, ValueError, AttributeError):
        return None
    try:
        region.write(code)
        address = ctypes.addressof(ctypes.c_char.from_buffer(region))
        function = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p)(address)
        result = int(function(*args))
        del function
        return result
    finally:
        with contextlib.suppress(BufferError):  # a ctypes view still alive
            region.close()


def cpuid_advertises_amx() -> bool | None:
    edx = _run_machine_code(_CPUID7_EDX_CODE, 0)
    return None if edx is None else bool(edx & CPUID7_EDX_AMX_TILE)


def xcr0_tile_enabled() -> bool | None:
    xcr0 = _run_machine_code(_XGETBV_CODE, 0)
    return None if xcr0 is None else (xcr0 & XCR0_TILE_BITS) == XCR0_TILE_BITS


def tile_permission_granted() -> bool | None:
    """``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0`` (Linux >= 5.16)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0)
    except (OSError, AttributeError):
        return None


def _tile_config() -> ctypes.Array[ctypes.c_char]:
    """64-byte tile config: palette 1, tmm0 = 16 rows x 64 bytes."""
    config = bytearray(64)
    config[0] = 1  # palette_id
    config[16:18] = (64).to_bytes(2, "little")  # colsb[0]
    config[48] = 16  # rows[0]
    return ctypes.create_string_buffer(bytes(config), 64)


def run_tilezero() -> None:
    """Execute real AMX instructions; dies with SIGILL where AMX is not usable.

    Entry point of the child process started by ``tilezero_executes``.
    """
    tile_permission_granted()
    config = _tile_config()
    _run_machine_code(_TILEZERO_CODE, ctypes.addressof(config))


def tilezero_executes() -> bool | None:
    """Run ``run_tilezero`` in a child interpreter: True if it exits 0, False on a signal."""
    if getattr(sys, "frozen", False):  # PyInstaller: sys.executable is localchat, not Python
        return None
    code = "from localchat.hardware.amx import run_tilezero; run_tilezero()"
    try:
        child = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if child.returncode == 0:
        return True
    return False if child.returncode < 0 else None


def detect_amx(*, execute: bool = False) -> AmxStatus | None:
    """AMX status on Linux x86-64; ``execute=True`` also runs a real tilezero in a child.

    The child is started only when the cheap checks say AMX should work, or when
    CPUID advertises it (then the child shows whether it really traps).
    """
    if not is_linux_x86_64():
        return None
    advertised = cpuid_advertises_amx()
    if advertised is None:
        return None
    enabled = bool(xcr0_tile_enabled())
    permitted = tile_permission_granted()
    executes = tilezero_executes() if (execute and advertised) else None
    return AmxStatus(
        cpuid_advertises=advertised,
        os_enabled=enabled,
        permitted=permitted,
        executes=executes,
    )
