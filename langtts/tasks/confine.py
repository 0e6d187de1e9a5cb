"""Namespaces for the code sandbox: no network, a minimal read-only filesystem, a private /tmp and /proc.

A confined run enters new network, mount, PID, IPC and UTS namespaces as root, sees only an allow-list of the
machine's files read-only (the interpreter's prefix, ``/usr``, ``/lib*``, ``/etc/ld.so.cache``), its working
directory at ``/sandbox`` (writable), an empty ``/tmp`` and ``/dev/shm``, a few device nodes and its own
``/proc``; then it drops to the sandbox uid (with ``no_new_privs``) and runs the program. Nothing it writes
outside ``/sandbox`` reaches the disk, and the working directory is removed after the run.

Backends, in order of preference: ``bwrap`` (bubblewrap builds the namespaces and the mounts), ``unshare``
(util-linux ``unshare`` makes the namespaces, :data:`SETUP` the mounts) and ``syscall`` (:data:`SETUP` calls
``unshare(2)`` itself: ``os.unshare`` on Python 3.12+, libc's through ctypes before). All need Linux and root.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys

BACKENDS = ("bwrap", "unshare", "syscall")
WORKDIR = "/sandbox"  # the run's working directory inside the sandbox
# CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET
_CLONE_FLAGS = 0x00020000 | 0x04000000 | 0x08000000 | 0x20000000 | 0x40000000
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}  # syscall numbers
_DEVICES = ("null", "zero", "full", "random", "urandom")

# Runs as root in the new namespaces before the program (argv[6] is the JSON spec); the program runs in a child,
# while this process stays PID 1 of the namespace, reaps orphans and exits with the child's status (128 + signal
# if killed), which takes every other process of the namespace with it.
SETUP = r"""
import ctypes, json, os, sys
_spec = json.loads(sys.argv[6])
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src, dst, fstype, flags, data=None):
    args = [None if s is None else s.encode() for s in (src, dst, fstype)]
    _check(_libc.mount(*args, ctypes.c_ulong(flags), None if data is None else data.encode()), "mount " + dst)


def _exit_as(status):
    code = os.waitstatus_to_exitcode(status)
    os._exit(128 - code if code < 0 else code)


def _build_root(root, ops, pivot_root):
    RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT, BIND, REC, PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
    _mount(None, "/", None, REC | PRIVATE)
    _mount("tmpfs", root, "tmpfs", NOSUID | NODEV, "mode=0755")
    os.umask(0o022)
    for op, src, dst in ops:
        path = root + dst
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if op == "symlink":
            os.symlink(src, path)
        elif op in ("tmpfs", "proc"):
            os.makedirs(path, exist_ok=True)
            flags = NOSUID | NODEV | (NOEXEC if op == "proc" else 0)
            _mount(op, path, op, flags, "mode=1777" if op == "tmpfs" else None)
        else:  # bind "ro", "rw" or "dev" (a device node: without nodev)
            os.makedirs(path, exist_ok=True) if os.path.isdir(src) else open(path, "a").close()
            _mount(src, path, None, BIND | REC)
            flags = BIND | REMOUNT | NOSUID | (RDONLY if op == "ro" else 0) | (NODEV if op != "dev" else 0)
            _mount(None, path, None, flags)
    os.chdir(root)
    _check(_libc.syscall(pivot_root, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", 2), "umount the old root")  # MNT_DETACH
    os.chdir("/")
    _mount(None, "/", None, BIND | REMOUNT | RDONLY | NOSUID | NODEV)


if _spec["unshare"]:
    os.unshare(_spec["unshare"]) if hasattr(os, "unshare") else _check(_libc.unshare(_spec["unshare"]), "unshare")
    _child = os.fork()  # the child is PID 1 of the new PID namespace
    if _child:
        _exit_as(os.waitpid(_child, 0)[1])
if _spec["root"]:
    _build_root(_spec["root"], _spec["ops"], _spec["pivot_root"])
    _child = os.fork()
    if _child:
        while True:
            _pid, _status = os.wait()
            if _pid == _child:
                _exit_as(_status)
os.chdir(_spec["cwd"])
_check(_libc.prctl(38, 1, 0, 0, 0), "no_new_privs")  # PR_SET_NO_NEW_PRIVS: no setuid binary regains root
os.setgroups([])
os.setgid(_spec["uid"])
os.setuid(_spec["uid"])
"""


def unavailable(backend: str) -> str | None:
    """Why `backend` cannot run on this machine (before trying it), or None."""
    if not sys.platform.startswith("linux"):
        return f"namespaces need Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return "entering namespaces and dropping to the sandbox uid needs root"
    if backend == "bwrap":
        return None if shutil.which("bwrap") else "bwrap is not installed"
    if platform.machine() not in _PIVOT_ROOT:
        return f"no pivot_root syscall number for {platform.machine()}"
    if backend == "unshare":
        return None if shutil.which("unshare") else "unshare (util-linux) is not installed"
    return None


def interpreter() -> str:
    """The real path of the base interpreter (a virtual environment's is not in the sandbox)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def mounts(exe: str, workdir: str) -> list[tuple[str, str, str]]:
    """The sandbox's filesystem as ``(op, source, destination)``: op is ``ro``/``rw``/``dev`` (bind),
    ``symlink`` (source is the target), ``tmpfs`` or ``proc``."""
    ops: list[tuple[str, str, str]] = []
    bound: list[str] = []
    tops = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache"]
    prefixes = [os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix, os.path.dirname(exe))]
    for path in tops + prefixes:
        if any(path == b or path.startswith(b.rstrip("/") + "/") for b in bound):
            continue
        if os.path.islink(path):
            ops.append(("symlink", os.readlink(path), path))
        elif os.path.exists(path):
            ops.append(("ro", path, path))
            bound.append(path)
    ops += [("dev", f"/dev/{name}", f"/dev/{name}") for name in _DEVICES]
    ops += [("symlink", "/proc/self/fd", "/dev/fd")]
    ops += [("symlink", f"/proc/self/fd/{fd}", f"/dev/{name}") for fd, name in enumerate(("stdin", "stdout", "stderr"))]
    ops += [("tmpfs", "", "/tmp"), ("tmpfs", "", "/dev/shm"), ("proc", "", "/proc"), ("rw", workdir, WORKDIR)]
    return ops


def command(backend: str, exe: str, bootstrap: list[str], base: str, uid: int) -> list[str]:
    """The argv that runs ``exe -I -c SETUP+program LIMITS...`` (`bootstrap`) confined by `backend`, with
    ``base/work`` as the working directory and ``base/root`` as the mount point of the new root."""
    ops = mounts(exe, os.path.join(base, "work"))
    spec: dict[str, object] = {
        "unshare": 0,
        "root": None,
        "ops": ops,
        "pivot_root": _PIVOT_ROOT.get(platform.machine()),
        "uid": uid,
    }
    spec["cwd"] = WORKDIR
    if backend == "bwrap":
        spec["ops"] = []
        return ["bwrap", *_bwrap_options(ops), exe, *bootstrap, json.dumps(spec)]
    spec["root"] = os.path.join(base, "root")
    if backend == "unshare":
        flags = ["--net", "--mount", "--pid", "--ipc", "--uts", "--fork", "--kill-child", "--propagation=private"]
        return ["unshare", *flags, exe, *bootstrap, json.dumps(spec)]
    spec["unshare"] = _CLONE_FLAGS
    return [exe, *bootstrap, json.dumps(spec)]


def _bwrap_options(ops: list[tuple[str, str, str]]) -> list[str]:
    options = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    options += ["--die-with-parent", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    made = {"/"}
    for op, src, dst in ops:
        parents = [p for p in _parents(dst) if p not in made]
        for parent in parents:  # bwrap would make missing parents 0700: the sandbox uid could not enter them
            options += ["--perms", "0755", "--dir", parent]
        made.update(parents)
        if op == "symlink":
            options += ["--symlink", src, dst]
        elif op == "tmpfs":
            options += ["--perms", "1777", "--tmpfs", dst]
        elif op == "proc":
            options += ["--proc", dst]
        else:
            options += [{"ro": "--ro-bind", "rw": "--bind", "dev": "--dev-bind"}[op], src, dst]
    return [*options, "--remount-ro", "/", "--chdir", WORKDIR]


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
