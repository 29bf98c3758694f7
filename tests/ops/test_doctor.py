"""`flask kiln doctor` on this host (set up by scripts/setup.sh), and with things broken on purpose."""
from __future__ import annotations


def test_doctor_passes_on_a_set_up_host(app):
    result = app.test_cli_runner().invoke(args=["kiln", "doctor"])
    assert result.exit_code == 0, result.output
    for name in ("tool mmdebstrap", "tool mksquashfs", "tool xorriso", "tool grub-mkrescue", "tool qemu-system-x86_64",
                 "loop devices", "kvm", "disk", "database", "redis", "artifact store"):
        assert f"] {name}: " in result.output, name
    assert "0 failures" in result.output


def test_doctor_names_what_to_fix_and_fails(app, monkeypatch, tmp_path):
    from redis import Redis

    monkeypatch.setenv("PATH", str(tmp_path))  # no tools at all
    saved = app.config["REDIS_URL"]
    # A port nothing listens on: bind one, note it, close it.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    try:
        result = app.test_cli_runner().invoke(args=["kiln", "doctor"])
    finally:
        app.config["REDIS_URL"] = saved
    assert result.exit_code == 1
    assert "[FAIL] tool mmdebstrap: not found on PATH" in result.output
    assert "fix: apt-get install squashfs-tools" in result.output
    assert f"[FAIL] redis: redis://127.0.0.1:{port}/0" in result.output
    assert "[ok  ] database" in result.output
    assert Redis.from_url(saved).ping()
