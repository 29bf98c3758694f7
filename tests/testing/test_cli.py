"""`kiln test ARTIFACT` through the engine's click group, on a real (non-booting) rootfs artifact."""
import json

from click.testing import CliRunner

from app.engine.cli import kiln


def invoke(*args):
    return CliRunner().invoke(kiln, list(map(str, args)), catch_exceptions=False)


def test_passing_checks_exit_zero(packed_images):
    result = invoke("test", packed_images["rootfs"], "--assert", "file_contains:path=/etc/motd,text=kiln",
                    "--assert", "service_enabled:service=ssh", "--no-defaults")
    assert result.exit_code == 0, result.output
    assert "passed  file_contains(path=/etc/motd, text=kiln): /etc/motd contains 'kiln'" in result.output
    assert result.output.rstrip().endswith("tests passed")


def test_a_failing_check_exits_non_zero_and_says_why(packed_images, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: t\npackages: [openssh-server, nginx]\nservices: {enable: [ssh]}\n")
    result = invoke("test", packed_images["rootfs"], "--recipe", recipe, "--json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    assert doc["status"] == "failed"
    failed = [a for t in doc["tests"] for a in t["assertions"] if a["result"] == "failed"]
    assert [a["message"] for a in failed] == ["package nginx is not installed"]


def test_bad_input_is_named(packed_images, tmp_path):
    bad_assert = invoke("test", packed_images["rootfs"], "--assert", "port_open:port=http")
    assert bad_assert.exit_code == 2 and "port must be a whole number, got 'http'" in bad_assert.output
    odd = tmp_path / "image.bin"
    odd.write_bytes(b"x")
    unknown = invoke("test", odd)
    assert unknown.exit_code == 2 and "pass --format" in unknown.output
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("name: t\npackages: [Not A Package]\n")
    bad_recipe = invoke("test", packed_images["rootfs"], "--recipe", recipe)
    assert bad_recipe.exit_code == 2 and "packages[0]" in bad_recipe.output
