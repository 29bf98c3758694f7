"""What the build takes off a server image's boot path (app/engine/bootpath.py), on small real trees."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from app.engine.bootpath import MASKED_GENERATORS, live_boot_options, trim_boot_path
from app.engine.context import BuildContext, BuildEvents
from app.engine.formats import kernel_cmdline
from app.engine.settings import EngineSettings


class Lines(BuildEvents):
    def __init__(self):
        self.lines: list[str] = []

    def log(self, stage, level, message):
        self.lines.append(message)


def _ctx(tmp_path: Path) -> tuple[BuildContext, Lines]:
    events = Lines()
    ctx = BuildContext(settings=EngineSettings(data_dir=tmp_path / "data", mirror="http://127.0.0.1:9/debian"),
                       events=events, cancel=threading.Event(), deadline=None, work=tmp_path / "work")
    return ctx, events


def _systemd_tree(root: Path) -> Path:
    (root / "usr/lib/systemd/system-generators").mkdir(parents=True)
    (root / "usr/lib/systemd/systemd").write_text("")
    for name in [*MASKED_GENERATORS, "systemd-getty-generator", "systemd-fstab-generator"]:
        (root / "usr/lib/systemd/system-generators" / name).write_text("")
    (root / "etc").mkdir()
    (root / "var").mkdir()
    os.utime(root / "usr", (1_700_000_000, 1_700_000_000))
    return root


def test_masks_only_generators_a_kiln_image_cannot_use(tmp_path):
    root = _systemd_tree(tmp_path / "root")
    ctx, events = _ctx(tmp_path)
    trim_boot_path(ctx, root)
    gens = root / "etc/systemd/system-generators"
    assert sorted(p.name for p in gens.iterdir()) == sorted(MASKED_GENERATORS)
    assert all(os.readlink(p) == "/dev/null" for p in gens.iterdir())
    # The serial console's getty and /etc/fstab still work.
    assert not (gens / "systemd-getty-generator").exists()
    assert "masked generators" in events.lines[-1]


def test_update_stamps_carry_usr_mtime_so_first_boot_units_do_not_rerun(tmp_path):
    root = _systemd_tree(tmp_path / "root")
    trim_boot_path(_ctx(tmp_path)[0], root)
    for stamp in ("etc/.updated", "var/.updated"):
        # ConditionNeedsUpdate= is true only when /usr is newer than the stamp.
        assert (root / stamp).stat().st_mtime_ns == (root / "usr").stat().st_mtime_ns


def test_recipe_choices_stay(tmp_path):
    root = _systemd_tree(tmp_path / "root")
    gens = root / "etc/systemd/system-generators"
    gens.mkdir(parents=True)
    # A recipe that ships its own generator under a masked name keeps it.
    (gens / "systemd-ssh-generator").write_text("#!/bin/sh\n")
    (root / "etc/.updated").write_text("TIMESTAMP_NSEC=1\n")
    trim_boot_path(_ctx(tmp_path)[0], root)
    assert (gens / "systemd-ssh-generator").read_text() == "#!/bin/sh\n"
    assert (root / "etc/.updated").read_text() == "TIMESTAMP_NSEC=1\n"


def test_tree_without_systemd_is_left_alone(tmp_path):
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    trim_boot_path(_ctx(tmp_path)[0], root)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["usr", "usr/bin"]


def test_escaping_symlink_is_not_followed(tmp_path):
    root = _systemd_tree(tmp_path / "root")
    outside = tmp_path / "host-etc"
    outside.mkdir()
    (root / "etc/systemd").mkdir()
    # A recipe left /etc/systemd/system-generators pointing at the host: the writes stay inside the tree.
    (root / "etc/systemd/system-generators").symlink_to(outside)
    trim_boot_path(_ctx(tmp_path)[0], root)
    assert list(outside.iterdir()) == []


def test_live_cmdline_skips_live_boots_network_step_unless_ifupdown_is_installed(tmp_path):
    root = tmp_path / "root"
    (root / "usr/sbin").mkdir(parents=True)
    assert live_boot_options(root) == ["nonetworking"]
    line = kernel_cmdline(root, live=True)
    assert line.startswith("boot=live ") and "console=ttyS0,115200" in line and line.endswith(" nonetworking")
    assert "boot=live" not in kernel_cmdline(root, live=False)
    (root / "usr/sbin/ifup").write_text("")
    assert "nonetworking" not in kernel_cmdline(root, live=True)
