"""What a document worker may touch, and what it may not see of the core that started it.

A worker parses hostile files with MuPDF, Pillow and Tesseract; an exploit in any
of them runs with the worker's rights. So the core makes itself non-dumpable
(`PR_SET_DUMPABLE` 0: its /proc files, environment and memory included, are not
open to other processes of the same user), and each worker, once its libraries
are loaded, confines itself: `PR_SET_NO_NEW_PRIVS`, then Landlock where the
kernel has it: read and execute the interpreter, the libraries and Tesseract,
write its own scratch folder, nothing else (not /proc, not the data folder, not
/dev/shm), no TCP, no signals or abstract sockets outside itself.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
PR_SET_NO_NEW_PRIVS = 38
# Landlock's system calls have the same numbers on every Linux architecture.
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

# Filesystem rights by the Landlock ABI that introduced them.
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_ABI1 = (1 << 13) - 1  # execute ... make_sym
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # the ones a file rule may hold

READ_EXECUTE = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
# Where the interpreter, the libraries and Tesseract live on a Linux system.
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc/ld.so.cache", "/etc/ld.so.conf",
               "/etc/ld.so.conf.d", "/etc/localtime")


class _RulesetAttr(ctypes.Structure):
    _fields_ = (("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64))


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def make_undumpable() -> bool:
    """Make this process non-dumpable, so a same-user process cannot read its environment or memory."""
    if not sys.platform.startswith("linux"):
        return False
    libc = _libc()
    return bool(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 and libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 when it has none (or it is switched off)."""
    if not sys.platform.startswith("linux"):
        return 0
    version = _libc().syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                              ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def worker_read_paths() -> list[str]:
    """What a worker reads after it starts: the system's libraries, this Python, medops, Tesseract and its data."""
    import medops

    paths = [*SYSTEM_READ, sys.prefix, sys.base_prefix, sys.exec_prefix]
    # medops/ holds links to core/ (and console/): the folders they lead to are read too.
    paths += [str(Path(p).resolve()) for p in medops.__path__]
    paths += [str(Path(p, "core").resolve()) for p in medops.__path__]
    paths += [str(Path(p).resolve()) for p in sys.path if p and Path(p).is_dir()]
    tesseract = shutil.which("tesseract")
    if tesseract:
        paths += [str(Path(tesseract).resolve().parent)]
    if os.environ.get("TESSDATA_PREFIX"):
        paths.append(os.environ["TESSDATA_PREFIX"])
    return paths


def confine(read: Iterable[str], write: Iterable[str]) -> str | None:
    """Confine this process for good: no new privileges, then Landlock. None when confined, else why not fully."""
    libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"PR_SET_NO_NEW_PRIVS failed ({os.strerror(ctypes.get_errno())})"
    abi = landlock_abi()
    if abi < 1:
        return "the kernel has no Landlock: workers run without a filesystem sandbox"
    fs = FS_ABI1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0) | (FS_IOCTL_DEV if abi >= 5 else 0)
    attr = _RulesetAttr(fs, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0,
                        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"Landlock refused a ruleset ({os.strerror(ctypes.get_errno())})"
    try:
        for path, rights in [*((p, READ_EXECUTE) for p in read), *((p, fs) for p in write),
                             ("/dev/null", FS_READ_FILE | FS_WRITE_FILE)]:
            _allow(libc, ruleset, path, rights & fs)
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
            return f"Landlock could not be applied ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(ruleset)
    return None


def _allow(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not on this system: nothing to allow
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS
        rule = _PathBeneathAttr(rights, fd)
        libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, ctypes.c_uint32(LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule),
                     ctypes.c_uint32(0))
    finally:
        os.close(fd)
