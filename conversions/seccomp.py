"""The seccomp filter of the converter sandbox, compiled to BPF for bwrap.

Everything is allowed except what a converter (Python, TensorFlow, h5py,
Node) never needs and an escape or a snoop would: debugging other
processes, mounting, new namespaces, kernel keys, BPF, modules, changing
file ownership or modes (the sandbox's bind mounts show host files), and
the clock, host name and reboot calls. Denied calls fail with EPERM
instead of killing the process, so a library that probes for a feature
gets an ordinary error.
"""

from __future__ import annotations

import errno
import os
import tempfile

import pyseccomp as seccomp

DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr", "unshare", "setns",
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat", "mknod", "mknodat",
    "name_to_handle_at", "open_by_handle_at", "quotactl", "acct", "swapon", "swapoff", "reboot", "syslog",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    "iopl", "ioperm", "vhangup", "lookup_dcookie", "personality",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)  # fmt: skip
# clone() may make threads and processes but no namespaces.
NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)


def build_filter() -> seccomp.SyscallFilter:
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in DENIED:
        try:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError):  # not a system call on this architecture
            continue
    for flag in NAMESPACE_FLAGS:
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory, out of a filter's reach: say it does
    # not exist, and the C library falls back to clone().
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    # Stop a job from typing into a terminal it shares (bwrap --new-session too).
    rules.add_rule(seccomp.ERRNO(errno.EPERM), "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, 0x5412))
    return rules


def bpf_file() -> int:
    """A file descriptor positioned at the start of the compiled filter."""
    handle = tempfile.TemporaryFile()
    build_filter().export_bpf(handle)
    handle.flush()
    fd = os.dup(handle.fileno())
    handle.close()
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
