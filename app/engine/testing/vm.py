"""One throwaway QEMU virtual machine for testing an image.

The VM runs in its own process group (so teardown kills everything), boots from a throwaway
qcow2 overlay or a read-only CD-ROM (the artifact is never written), forwards the guest ports
the checks need to free loopback ports on the host, exposes qemu-guest-agent on a unix socket,
and writes its serial console to a log file that outlives the VM.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from app.engine.process import CommandFailed, kill_group, run
from app.engine.testing import console as consolelib

LogFn = Callable[[str, str], None]

MEMORY_MB = 1792
# A working KVM reaches SeaBIOS's boot menu in well under a second; the limit is for a starved host.
KVM_PROBE_TIMEOUT = 30.0
# SeaBIOS writes its debug log in a steady stream until the boot menu: this long without a byte is a hang.
KVM_PROBE_STALL = 8.0
# Under KVM the kernel prints within seconds; silence this long after start means KVM hangs here.
KVM_PROGRESS_TIMEOUT = 40.0
PORT_RETRIES = 5
# With RDRAND the guest kernel's RNG is ready at once; without it early userspace stalls ~25 s
# under TCG gathering entropy (measured: 87 s -> 58 s to login). "max" is slower still (104 s).
TCG_CPU_MODEL = "qemu64,+rdrand"
TCG_THREAD = "multi"
MACHINE = "pc"
# The bus an ISO is attached on: "scsi" (a virtio-scsi CD-ROM, which SeaBIOS boots and Debian's initramfs
# drives with virtio_scsi and sr_mod) or "ide" (the emulated IDE CD-ROM). Under QEMU 10 scsi boots the SSH
# ISO about 3 s sooner (median of 4 alternating boots, 40.3 s against 43.6 s); under QEMU 7.2 the two were
# level, because 7.2 spent the time elsewhere (docs/boot-time.md).
CDROM_BUS = "scsi"
# Under TCG on a starved host the guest's clock runs on while QEMU's timer thread waits for a CPU, so
# the kernel's early timer check can see too few ticks and panic ("IO-APIC + timer doesn't work!",
# seen 1 in 9 boots at load ~18 on 2 cores, issue 20). `-icount shift=auto` (needs thread=single) ties
# guest time to executed instructions; the bench can try it (bench/boot.py --vm icount=auto), but it
# is not the default until measured not slower to login. The runner retries such deaths instead.
TCG_ICOUNT = ""
# A root worker drops QEMU to this user once the VM is set up (disk, sockets and log are open by then).
RUN_AS = "nobody"
KERNEL_OUTPUT_RE = re.compile(r"\[\s*\d+\.\d+\]|Linux version|Welcome to|systemd\[1\]")
# The internal snapshot (savevm/loadvm) that holds a VM as it was when its boot had settled.
SNAPSHOT_TAG = "kiln-booted"
# Bump when something outside the command line changes what a saved VM is (a snapshot of an older layout
# must not be loaded into a VM this code would make differently).
SNAPSHOT_REVISION = 1
QMP_TIMEOUT = 300.0


def copy_file(src: Path, dst: Path) -> None:
    """A copy of src that shares its blocks where the filesystem can (reflink), else a plain copy."""
    try:
        run(["cp", "--reflink=auto", "--sparse=always", str(src), str(dst)])
    except CommandFailed as err:
        raise VMError(f"cannot copy {src.name}: " + "; ".join(err.tail[-3:])) from None


def _default_cpus() -> int:
    return min(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class VMSettings:
    """How test VMs are made; passed in (the app builds it from its config, a CLI from its environment).

    The library never reads the environment itself (STYLE.md habit 14)."""
    memory_mb: int = MEMORY_MB
    cpus: int = field(default_factory=_default_cpus)
    run_as: str = RUN_AS            # the user a root worker drops QEMU to
    accel: str = ""                 # "kvm" or "tcg" forces one; "" probes KVM once per process
    machine: str = MACHINE
    cpu_model: str = TCG_CPU_MODEL  # under TCG only; "default" leaves QEMU's own
    tcg_thread: str = TCG_THREAD
    icount: str = TCG_ICOUNT        # "-icount" under TCG (forces thread=single); "" for none
    firmware: str = "bios"
    cdrom: str = CDROM_BUS          # the bus an ISO is attached on: "ide" or "scsi" (virtio-scsi)
    # A later test run of an image with the same bytes resumes a snapshot of an earlier run's settled boot.
    snapshots: bool = True

    @classmethod
    def from_config(cls, config: Mapping) -> "VMSettings":
        """From a mapping of the KILN_TEST_VM_* keys and KILN_QEMU_ACCEL (the app's config, or the
        environment at a CLI's edge); missing or empty values take the defaults, bad ones are refused by name."""
        def text(name: str, default: str) -> str:
            raw = config.get(name)
            return default if raw in (None, "") else str(raw).strip()

        def positive(name: str, default: int) -> int:
            raw = config.get(name)
            if raw in (None, ""):
                return default
            try:
                value = int(raw)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
            if value <= 0:
                raise ValueError(f"{name} must be greater than 0, got {value}")
            return value

        def one_of(name: str, default: str, choices: tuple[str, ...]) -> str:
            value = text(name, default).lower()
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(c or repr(c) for c in choices)}, got {value!r}")
            return value

        def flag(name: str, default: bool) -> bool:
            value = text(name, "on" if default else "off").lower()
            if value in ("1", "true", "yes", "on"):
                return True
            if value in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{name} must be on or off, got {value!r}")

        accel = one_of("KILN_QEMU_ACCEL", "", ("", "auto", "kvm", "tcg"))
        return cls(memory_mb=positive("KILN_TEST_VM_MEMORY_MB", MEMORY_MB),
                   cpus=positive("KILN_TEST_VM_CPUS", _default_cpus()),
                   run_as=text("KILN_TEST_VM_USER", RUN_AS),
                   accel="" if accel == "auto" else accel,
                   machine=text("KILN_TEST_VM_MACHINE", MACHINE),
                   cpu_model=text("KILN_TEST_VM_CPU_MODEL", TCG_CPU_MODEL),
                   tcg_thread=one_of("KILN_TEST_VM_TCG_THREAD", TCG_THREAD, ("multi", "single")),
                   icount=text("KILN_TEST_VM_ICOUNT", TCG_ICOUNT),
                   firmware=one_of("KILN_TEST_VM_FIRMWARE", "bios", ("bios", "uefi")),
                   cdrom=one_of("KILN_TEST_VM_CDROM", CDROM_BUS, ("ide", "scsi")),
                   snapshots=flag("KILN_TEST_VM_SNAPSHOTS", True))


class VMError(Exception):
    """QEMU could not be started or the VM could not be used; the message says why."""


class QemuStartError(VMError):
    """QEMU itself exited right after starting (not a problem with the image's file)."""


# -- acceleration --------------------------------------------------------------------------

_kvm_verdict: bool | None = None
_kvm_lock = threading.Lock()


def _kvm_probe() -> tuple[bool, bool]:
    """(works, sure): start a disk-less VM under KVM and watch SeaBIOS's debug log.

    SeaBIOS reaching its boot menu proves KVM runs guest code to the end. Some hosts (nested KVM, kvm-pvm)
    run the BIOS's first steps and then hang for good, so a log that stops growing while QEMU runs is a
    certain "no", as is QEMU refusing KVM. Silence until the deadline is not: a starved host can be that
    slow, so that answer holds only for this process.
    """
    with tempfile.TemporaryDirectory(prefix="kiln-kvm-probe-") as tmp:
        debug_log = Path(tmp) / "bios.log"
        argv = ["qemu-system-x86_64", "-accel", "kvm", "-nodefaults", "-no-user-config", "-display", "none",
                "-m", "64", "-chardev", f"file,id=dbg,path={debug_log}",
                "-device", "isa-debugcon,iobase=0x402,chardev=dbg", "-no-reboot"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + KVM_PROBE_TIMEOUT
            size, grew_at = 0, time.monotonic()
            while time.monotonic() < deadline:
                text = debug_log.read_text(errors="replace") if debug_log.exists() else ""
                if "No bootable device" in text or "Booting from" in text:
                    return True, True
                if proc.poll() is not None:
                    return False, True
                if len(text) != size:
                    size, grew_at = len(text), time.monotonic()
                elif size and time.monotonic() - grew_at > KVM_PROBE_STALL:
                    return False, True
                time.sleep(0.2)
            return False, False
        finally:
            kill_group(proc, grace=1.0)
            proc.wait()


def _broken_marker() -> Path:
    # A KVM hang is a property of this host until it reboots: remember it across worker processes,
    # so only the first boot after a host reboot pays for finding out.
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "unknown"
    return Path(tempfile.gettempdir()) / f"kiln-kvm-broken-{boot_id}"


def choose_accel(settings: VMSettings | None = None) -> str:
    """'kvm' when it works here (probed once per process), else 'tcg'. settings.accel forces one."""
    global _kvm_verdict
    forced = (settings or VMSettings()).accel
    if forced in ("kvm", "tcg"):
        return forced
    with _kvm_lock:
        if _kvm_verdict is None:
            _kvm_verdict = False
            if os.access("/dev/kvm", os.R_OK | os.W_OK) and not _broken_marker().exists():
                _kvm_verdict, sure = _kvm_probe()
                if not _kvm_verdict and sure:
                    _remember_kvm_broken()
        return "kvm" if _kvm_verdict else "tcg"


def _remember_kvm_broken() -> None:
    try:
        _broken_marker().touch()
    except OSError:
        pass


def mark_kvm_broken() -> None:
    global _kvm_verdict
    with _kvm_lock:
        _kvm_verdict = False
        _remember_kvm_broken()


_qemu_version: str | None = None


def qemu_version() -> str:
    """QEMU's own version line (a snapshot loads only into the QEMU that wrote it); read once per process."""
    global _qemu_version
    if _qemu_version is None:
        try:
            out = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True, timeout=30)
            _qemu_version = out.stdout.strip().splitlines()[0] if out.stdout.strip() else "unknown"
        except (OSError, subprocess.TimeoutExpired):
            _qemu_version = "unknown"
    return _qemu_version


# -- ports -------------------------------------------------------------------------------------

def free_ports(count: int) -> list[int]:
    """Distinct free loopback TCP ports (held open together so they differ; QEMU may still race us)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _confinement(run_as: str) -> list[str]:
    """QEMU's seccomp filter, and no root: as root, QEMU switches to run_as (which needs set*id)."""
    as_root = os.geteuid() == 0
    sandbox = ["-sandbox", "on,obsolete=deny,spawn=deny,resourcecontrol=deny,elevateprivileges="
               + ("allow" if as_root else "deny")]
    if not as_root:
        return sandbox
    # -runas became -run-with user= in QEMU 9.1, and 10.0 no longer knows -runas.
    return sandbox + (["-run-with", f"user={run_as}"] if qemu_release() >= (9, 1) else ["-runas", run_as])


def qemu_release() -> tuple[int, int]:
    """(major, minor) of the QEMU on PATH, from its version line; (0, 0) when it says none."""
    found = re.search(r"version (\d+)\.(\d+)", qemu_version())
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


@dataclass
class BootOutcome:
    booted: bool
    reason: str = ""            # why not, when it did not boot (or the failed units when it did)
    seconds: float = 0.0        # from QEMU start to the login prompt / multi-user target
    state: consolelib.ConsoleState = field(default_factory=consolelib.ConsoleState)
    exit_code: int | None = None  # QEMU's exit status (negative: killed by that signal) when it stopped first


class VM:
    """Use as a context manager: the VM is always torn down on exit."""

    def __init__(self, image: Path, fmt: str, work_dir: Path, *, forward: list[tuple[str, int]] | None = None,
                 log: LogFn | None = None, accel: str | None = None, memory_mb: int | None = None,
                 cpus: int | None = None, firmware: str | None = None, machine: str | None = None,
                 cpu_model: str | None = None, tcg_thread: str | None = None, rng: bool = True,
                 icount: str | None = None, cdrom: str | None = None, settings: VMSettings | None = None,
                 savable: bool = False, restore: bool = False):
        if fmt not in ("iso", "qcow2"):
            raise VMError(f"format {fmt!r} does not boot; only iso and qcow2 images can be started")
        image = Path(image)
        if not image.is_file():
            raise VMError(f"image {image} does not exist")
        self.image, self.fmt = image.resolve(), fmt
        self.work_dir = Path(work_dir)
        self.forward = sorted(set(forward or [])) or []
        self.log = log or (lambda level, msg: None)
        # The settings give every default; an explicit argument overrides it (the bench varies them).
        self.settings = settings = settings or VMSettings()
        self.accel = accel
        self.memory_mb = memory_mb or settings.memory_mb
        self.cpus = cpus or settings.cpus
        self.firmware = firmware or settings.firmware
        self.machine = machine or settings.machine
        self.cpu_model = cpu_model or settings.cpu_model
        self.tcg_thread = tcg_thread or settings.tcg_thread
        self.rng = rng
        self.icount = icount if icount is not None else settings.icount
        self.cdrom = cdrom or settings.cdrom
        if self.cdrom not in ("ide", "scsi"):
            raise VMError(f"cdrom bus {self.cdrom!r} is not one of ide, scsi")
        self.id = uuid.uuid4().hex[:8]
        # Unix socket paths are limited to ~107 bytes; keep the run dir short.
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"kiln-vm-{self.id}-"))
        self.console_log = self.work_dir / f"console-{self.fmt}-{self.id}.log"
        self.qga_socket = self.run_dir / "qga.sock"
        self.ports: dict[tuple[str, int], int] = {}
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self._stderr_path = self.run_dir / "qemu.stderr"
        self.qmp_socket = self.run_dir / "qmp.sock"
        # savable: the VM can be saved with save_snapshot (an ISO gets a state disk for it); restore: QEMU starts
        # from the snapshot in state_file (which the caller put there) instead of booting.
        self.savable, self.restore = savable or restore, restore
        self.accel_used = ""

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> "VM":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def state_file(self) -> Path:
        """The qcow2 file savevm writes into: the overlay of a qcow2 image; for an ISO (whose CD-ROM is read-only) a
        state disk attached without a device (`-drive if=none`), so the guest never sees it and boots the same."""
        return self.run_dir / ("overlay.qcow2" if self.fmt == "qcow2" else "state.qcow2")

    def _qemu_img_create(self, path: Path, args: list[str], size: list[str], what: str, create: bool) -> None:
        if not create or path.exists():  # path exists: a restored VM's file, put there by the caller
            return
        try:
            run(["qemu-img", "create", "-q", "-f", "qcow2", *args, str(path), *size])
        except CommandFailed as err:
            raise VMError(f"cannot create {what} for {self.image.name}: " + "; ".join(err.tail[-3:])) from None

    def _disk_args(self, create: bool = True) -> list[str]:
        if self.fmt == "iso":
            state: list[str] = []
            if self.savable:
                self._qemu_img_create(self.state_file, [], ["1M"], "a state disk", create)
                state = ["-drive", f"file={self.state_file},format=qcow2,if=none,id=vmstate"]
            if self.cdrom == "scsi":
                return ["-device", "virtio-scsi-pci,id=scsi0",
                        "-drive", f"file={self.image},format=raw,media=cdrom,readonly=on,if=none,id=cd0",
                        "-device", "scsi-cd,bus=scsi0.0,drive=cd0,bootindex=0", *state]
            return ["-drive", f"file={self.image},media=cdrom,readonly=on,if=ide,index=0", "-boot", "d", *state]
        overlay = self.state_file
        self._qemu_img_create(overlay, ["-b", str(self.image), "-F", "qcow2"], [], "a throwaway overlay", create)
        return ["-drive", f"file={overlay},format=qcow2,if=virtio,cache=unsafe", "-boot", "c"]

    def _argv(self, accel: str, for_key: bool = False) -> list[str]:
        hostfwd = ",".join(f"hostfwd={proto}:127.0.0.1:{host}-:{guest}"
                           for (proto, guest), host in sorted(self.ports.items()))
        argv = ["qemu-system-x86_64", "-name", f"kiln-test-{self.id}", "-nodefaults", "-no-user-config",
                "-machine", self.machine, "-display", "none", "-vga", "none",
                "-m", str(self.memory_mb), "-smp", str(self.cpus),
                "-accel", "kvm" if accel == "kvm" else f"tcg,thread={'single' if self.icount else self.tcg_thread}",
                "-chardev", f"file,id=con0,path={self.console_log}", "-serial", "chardev:con0",
                # restrict=on: the guest reaches nothing on the host or beyond; only the forwards reach it.
                "-netdev", "user,id=n0,restrict=on" + (f",{hostfwd}" if hostfwd else ""),
                "-device", "virtio-net-pci,netdev=n0",
                "-chardev", f"socket,id=qga0,path={self.qga_socket},server=on,wait=off",
                "-device", "virtio-serial", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
                "-no-reboot", *_confinement(self.settings.run_as)]
        if self.rng:  # entropy: sshd and friends must not stall at boot under TCG
            argv += ["-device", "virtio-rng-pci"]
        firmware = self.firmware
        if accel == "tcg" and self.cpu_model != "default":
            argv += ["-cpu", self.cpu_model]
        if accel == "tcg" and self.icount:
            argv += ["-icount", self.icount]
        if firmware == "uefi":
            code = Path("/usr/share/OVMF/OVMF_CODE.fd")
            if not code.exists():
                raise VMError("UEFI boot needs OVMF (/usr/share/OVMF/OVMF_CODE.fd); install the ovmf package")
            argv += ["-bios", str(code)]
        if self.savable:
            argv += ["-qmp", f"unix:{self.qmp_socket},server=on,wait=off"]
        if self.restore and not for_key:
            argv += ["-loadvm", SNAPSHOT_TAG]
        return argv + self._disk_args(create=not for_key)

    def snapshot_key(self, sha256: str, accel: str) -> str:
        """The name of a snapshot of this VM booting the image with that sha256: the image's bytes and everything
        on QEMU's command line that loadvm needs to match (QEMU's version, machine, CPU, memory, accelerator,
        devices, disks); not the ports (a restored VM gets new host forwards), paths or the VM's id."""
        volatile = [(str(self.run_dir), "RUN"), (str(self.console_log), "CONSOLE"), (str(self.image), "IMAGE"),
                    (f"kiln-test-{self.id}", "kiln-test")]
        argv = []
        for arg in self._argv(accel, for_key=True):
            for value, placeholder in volatile:
                arg = arg.replace(value, placeholder)
            argv.append(re.sub(r",hostfwd=[^,]*", "", arg))
        signature = json.dumps({"revision": SNAPSHOT_REVISION, "qemu": qemu_version(), "format": self.fmt,
                                "argv": argv}, sort_keys=True)
        return f"{sha256}-{hashlib.sha256(signature.encode()).hexdigest()[:16]}"

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        accel = self.accel or choose_accel(self.settings)
        last_error = ""
        for attempt in range(PORT_RETRIES):
            hosts = free_ports(len(self.forward))
            self.ports = dict(zip(self.forward, hosts))
            self.console_log.write_bytes(b"")
            argv = self._argv(accel)
            self.log("info", f"starting test VM {self.id} ({accel}): {self.image.name}"
                     + (f", ports {', '.join(f'{g}/{p}->{h}' for (p, g), h in self.ports.items())}" if self.ports else ""))
            with open(self._stderr_path, "wb") as err:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                             start_new_session=True)
            self.started_at = time.monotonic()
            self.accel_used = accel
            # QEMU fails fast when a forwarded port was taken in the meantime.
            time.sleep(0.5)
            if self.proc.poll() is None:
                return
            last_error = self.stderr()
            self._kill()
            if "host forwarding" in last_error or "Could not set up host forwarding" in last_error:
                continue
            if accel == "kvm" and not self.restore:  # a snapshot QEMU refuses says nothing about KVM
                self.log("warning", f"QEMU failed under KVM, using TCG: {last_error.strip()[-200:]}")
                mark_kvm_broken()
                accel = "tcg"
                continue
            break
        raise QemuStartError(f"QEMU failed to start: {last_error.strip() or 'exited immediately'}")

    def _kill(self) -> None:
        if self.proc is not None:
            kill_group(self.proc, grace=2.0)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None

    def stop(self) -> None:
        """Kill the process group and remove the overlay and sockets; the console log stays."""
        try:
            self._kill()
        finally:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    # -- the monitor ----------------------------------------------------------------------------
    def monitor(self, command: str, timeout: float = QMP_TIMEOUT) -> str:
        """Run one human-monitor command through the QMP socket and return its output (HMP commands such as
        savevm report errors as output, not as a QMP error)."""
        if not self.savable:
            raise VMError("this VM has no monitor socket")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(self.qmp_socket))
            stream = sock.makefile("rwb")

            def call(payload: dict) -> dict:
                stream.write(json.dumps(payload).encode() + b"\n")
                stream.flush()
                while True:
                    line = stream.readline()
                    if not line:
                        raise VMError("QEMU closed its monitor")
                    reply = json.loads(line)
                    if "error" in reply:
                        raise VMError(f"QEMU refused {command!r}: {reply['error'].get('desc', reply['error'])}")
                    if "return" in reply:
                        return reply

            if not stream.readline():  # the greeting
                raise VMError("QEMU closed its monitor")
            call({"execute": "qmp_capabilities"})
            reply = call({"execute": "human-monitor-command", "arguments": {"command-line": command}})
            return str(reply.get("return") or "").strip()
        except (OSError, ValueError) as err:
            raise VMError(f"QEMU's monitor did not answer {command!r}: {err}") from None
        finally:
            sock.close()

    def save_snapshot(self, dest: Path) -> None:
        """Save the running VM into its state file (savevm) and copy that file to dest; the VM runs on after.

        The VM is paused from the save to the end of the copy, so the copy is whole: a qcow2 image's overlay is
        also the disk the guest writes to."""
        self.monitor("stop")
        try:
            out = self.monitor(f"savevm {SNAPSHOT_TAG}")
            if out:  # savevm prints nothing when it worked
                raise VMError(f"QEMU could not save the VM: {out.splitlines()[-1]}")
            copy_file(self.state_file, dest)
        finally:
            self.monitor("cont")

    def adopt_snapshot(self, saved: Path) -> None:
        """Make a copy of a saved VM's state file this VM's own, before start() with restore. A qcow2 overlay
        names the image it was made over; this VM's image has the same bytes but may be at another path."""
        copy_file(saved, self.state_file)
        if self.fmt == "qcow2":
            try:
                run(["qemu-img", "rebase", "-u", "-b", str(self.image), "-F", "qcow2", str(self.state_file)])
            except CommandFailed as err:
                raise VMError("cannot point the saved overlay at this image: " + "; ".join(err.tail[-3:])) from None

    # -- observation --------------------------------------------------------------------------
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr(self) -> str:
        try:
            return self._stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def exit_description(self) -> str:
        """How QEMU ended: its signal or status, and its last word on stderr."""
        code = self.proc.poll() if self.proc is not None else None
        how = ("QEMU is running" if code is None else f"QEMU was killed by signal {-code}" if code < 0
               else f"QEMU exited with status {code}")
        err = self.stderr().strip().splitlines()
        return how + (f": {err[-1].strip()}" if err else "")

    def console_text(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")
        except OSError:
            return ""

    def host_port(self, port: int, protocol: str = "tcp") -> int | None:
        return self.ports.get((protocol, port))

    def wait_boot(self, timeout: float, cancel: threading.Event | None = None, settle: float = 0.0) -> BootOutcome:
        """Watch the console until a login prompt / multi-user target, a fatal error, or timeout.

        Under KVM, silence from the kernel means KVM hangs on this host: restart once under TCG.
        """
        deadline = self.started_at + timeout
        while True:
            text = self.console_text()
            state = consolelib.parse_console(text)
            elapsed = time.monotonic() - self.started_at
            if state.fatal:
                return BootOutcome(False, state.fatal, elapsed, state)
            if state.booted:
                # Units failing right around the prompt print a moment later.
                end = time.monotonic() + settle
                while time.monotonic() < end and self.running():
                    time.sleep(0.5)
                state = consolelib.parse_console(self.console_text())
                return BootOutcome(True, "", elapsed, state)
            if cancel is not None and cancel.is_set():
                return BootOutcome(False, "cancelled", elapsed, state)
            if not self.running():
                return BootOutcome(False, f"the VM stopped before reaching a login prompt ({self.exit_description()})",
                                   elapsed, consolelib.parse_console(self.console_text()), exit_code=self.proc.poll())
            if (self.accel_used == "kvm" and elapsed > KVM_PROGRESS_TIMEOUT
                    and not KERNEL_OUTPUT_RE.search(text)):
                self.log("warning", "no kernel output under KVM; KVM hangs on this host, retrying under TCG")
                mark_kvm_broken()
                self._kill()
                (self.run_dir / "overlay.qcow2").unlink(missing_ok=True)
                self.accel = "tcg"
                self.start()
                deadline = self.started_at + timeout
                continue
            if time.monotonic() > deadline:
                return BootOutcome(False, f"timed out after {timeout:.0f} s without a login prompt", elapsed, state)
            time.sleep(0.5)
