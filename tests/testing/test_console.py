"""Console-log parsing on text captured from real boots (colour codes and CRs included)."""
from app.engine.testing.console import parse_console, tail

ESC = "\x1b"
OK = f"[{ESC}[0;32m  OK  {ESC}[0m]"
FAILED = f"[{ESC}[0;1;31mFAILED{ESC}[0m]"

BOOTED = (
    "[    7.982294] Run /init as init process\r\n"
    f"{OK} Started {ESC}[0;1;39mssh.service{ESC}[0m - OpenBSD Secure Shell server.\r\r\n"
    f"{OK} Reached target {ESC}[0;1;39mmulti-user.target{ESC}[0m - Multi-User System.\r\r\n"
    "\r\nDebian GNU/Linux 13 web01 ttyS0\r\n\r\n"
    "web01 login: [   94.152799] powernow_k8: Power state transitions not supported\r\n"
)


def test_login_prompt_with_kernel_noise_on_the_same_line_counts_as_booted():
    state = parse_console(BOOTED)
    assert state.login and state.multi_user and state.booted
    assert state.fatal is None and state.failed_units == []


def test_multi_user_target_alone_counts_as_booted():
    state = parse_console(f"{OK} Reached target {ESC}[0;1;39mmulti-user.target{ESC}[0m - Multi-User System.\r\n")
    assert state.booted and not state.login


def test_partial_boot_is_not_booted():
    state = parse_console(f"{OK} Started {ESC}[0;1;39msystemd-journald.service{ESC}[0m - Journal Service.\r\n"
                          "         Starting ssh.service - OpenBSD Secure Shell server...\r\n")
    assert not state.booted and state.fatal is None


def test_kernel_panic_is_fatal_with_its_reason():
    text = ("[    2.1] VFS: Cannot open root device \"sda1\" or unknown-block(0,0): error -6\r\n"
            "[    2.2] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\r\n")
    state = parse_console(text)
    assert state.panic == "VFS: Unable to mount root fs on unknown-block(0,0)"
    assert "kernel panic" in state.fatal and "Unable to mount root fs" in state.fatal


def test_emergency_shell_is_fatal():
    text = ("You are in emergency mode. After logging in, type \"journalctl -xb\" to view\r\n"
            "system logs, \"systemctl reboot\" to reboot, \"systemctl default\" or \"exit\"\r\n"
            "Give root password for maintenance\r\n(or press Control-D to continue): ")
    state = parse_console(text)
    assert state.emergency == "You are in emergency mode"
    assert "emergency shell" in state.fatal


def test_initramfs_shell_is_fatal():
    text = "Gave up waiting for root file system device.\r\nDropping to a shell!\r\n(initramfs) "
    assert parse_console(text).fatal == "dropped to an emergency shell (initramfs shell)"


def test_failed_units_are_named_new_and_old_systemd_style():
    text = (f"{FAILED} Failed to start {ESC}[0;1;39mbroken.service{ESC}[0m - Deliberately broken.\r\n"
            f"{FAILED} Failed to start Deliberately broken.\r\n"
            f"{FAILED} Failed to mount {ESC}[0;1;39mdata.mount{ESC}[0m - /data.\r\n"
            f"{FAILED} Failed to start {ESC}[0;1;39mbroken.service{ESC}[0m - Deliberately broken.\r\n"
            + BOOTED)
    state = parse_console(text)
    assert state.failed_units == ["broken.service", "Deliberately broken", "data.mount"]
    assert state.booted and state.fatal is None


def test_tail_drops_blank_lines_and_colour():
    assert tail(BOOTED, 2) == ("Debian GNU/Linux 13 web01 ttyS0\n"
                               "web01 login: [   94.152799] powernow_k8: Power state transitions not supported")


def test_the_init_system_starting_is_seen_before_the_login_prompt():
    initramfs = ("[    5.463162] clocksource: Switched to clocksource tsc\r\n"
                 "Begin: Running /scripts/init-bottom ... \r\n")
    assert not parse_console(initramfs).init
    systemd = initramfs + ("[  277.893797] systemd[1]: Inserted module 'autofs4'\r\n"
                           "\r\nWelcome to Debian GNU/Linux 13 (trixie)!\r\n\r\n")
    state = parse_console(systemd)
    assert state.init and not state.booted
    assert parse_console("\r\nWelcome to \x1b[1mDebian GNU/Linux 13 (trixie)\x1b[0m!\r\n").init
    assert parse_console(BOOTED).init


def test_the_tcg_int3_oops_is_a_death_before_init_so_the_runner_retries_it():
    """The "Fatal exception in interrupt" of issue 20, as one quiet-host boot printed it (docs/boot-time.md):
    multi-threaded TCG let a vCPU run a static-key patch's int3 after the patch was done."""
    console = ("[    2.950362] sched_clock: Marking stable (2908078460, 39080856)->(2952668912, -5509596)\r\n"
               "[    2.952525] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\r\n"
               "[    2.953480] RIP: 0010:sched_clock_cpu+0x9/0x1d0\r\n"
               "[    2.955531]  tick_nohz_idle_enter+0x53/0x70\r\n"
               "[    2.956613] Kernel panic - not syncing: Fatal exception in interrupt\r\n"
               "[    4.677026] ---[ end Kernel panic - not syncing: Fatal exception in interrupt ]---\r\n")
    state = parse_console(console)
    assert state.fatal == "kernel panic: Fatal exception in interrupt"
    assert not state.init and not state.booted
