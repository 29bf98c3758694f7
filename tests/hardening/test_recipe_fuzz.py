"""Property tests over recipe validation: any input gives a valid recipe or a bounded error naming fields."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine.recipe import FIELD_ORDER, MAX_ERRORS, RecipeError, dump_yaml, parse_recipe_text, validate_recipe

MAX_MESSAGE = 20_000  # characters of str(RecipeError): MAX_ERRORS fields, each message and path bounded
# derandomize: the same examples every run, so a red CI names a failure that reproduces.
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=80),
    st.sampled_from(["", "nginx", "web\n", "22/tcp", "0644", "ssh", "root", "/etc/motd", "Etc/UTC", "us", "iso",
                     "C.UTF-8", "trixie", "http://localhost/", "x" * 5000]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
                      max_leaves=40)
# Known keys most of the time, so the fuzzing reaches the validators behind them.
keys = st.one_of(st.sampled_from(FIELD_ORDER), st.text(max_size=20))
test_items = st.fixed_dictionaries({"type": st.sampled_from(["boots", "service_running", "port_open", "http_responds",
                                                              "command_succeeds", "package_installed", "file_exists",
                                                              "file_contains", "user_exists", "service_enabled", "reboots"]),
                                    "params": st.dictionaries(st.sampled_from(["service", "port", "protocol", "url", "status",
                                                                               "command", "package", "path", "text", "user",
                                                                               "groups", "timeoutSeconds", "extra"]),
                                                              values, max_size=4)})
recipes = st.dictionaries(keys, values, max_size=10) | st.fixed_dictionaries({}, optional={
    "packages": st.lists(st.text(max_size=30) | values, max_size=8),
    "users": st.lists(st.dictionaries(st.sampled_from(["name", "groups", "sshKeys", "passwordHash", "shell"]), values,
                                      max_size=4), max_size=3),
    "files": st.lists(st.dictionaries(st.sampled_from(["path", "content", "mode", "owner"]), values, max_size=4), max_size=3),
    "firewall": st.dictionaries(st.sampled_from(["enabled", "allow", "deny"]), values, max_size=3),
    "services": st.dictionaries(st.sampled_from(["enable", "disable", "mask"]), values, max_size=3),
    "tests": st.lists(test_items, max_size=3),
    "hostname": st.text(max_size=70), "name": st.text(max_size=70), "format": values, "release": values,
})


def _check_outcome(data) -> None:
    try:
        recipe = validate_recipe(data)
    except RecipeError as err:
        assert err.errors, "an error names at least one field"
        assert len(err.errors) <= MAX_ERRORS + 1
        assert len(str(err)) <= MAX_MESSAGE
        for path, messages in err.errors.items():
            assert isinstance(path, str) and path and messages and all(isinstance(m, str) and m for m in messages)
            root = path.split(".")[0].split("[")[0]
            assert root == "recipe" or root in FIELD_ORDER or (isinstance(data, dict) and any(
                path.startswith(str(k)[:100]) for k in data)), path
        return
    # A valid recipe is complete, plain JSON, and validating it again changes nothing.
    assert list(recipe) == FIELD_ORDER
    assert json.loads(json.dumps(recipe)) == recipe
    assert validate_recipe(recipe) == recipe
    assert parse_recipe_text(dump_yaml(recipe)) == recipe


@FUZZ
@given(recipes)
def test_any_mapping_gives_a_recipe_or_a_bounded_error(data):
    _check_outcome(data)


@FUZZ
@given(values)
def test_any_json_value_gives_a_recipe_or_a_bounded_error(data):
    _check_outcome(data)


@FUZZ
@given(st.text(max_size=400) | st.builds(lambda parts: "\n".join(parts), st.lists(
    st.sampled_from(["packages:", "- nginx", "- &a [x, x, x, x]", "- [*a, *a, *a, *a]", "name: web", "users:",
                     "  - name: admin", "tests: [{type: boots}]", "? [a, b]\n: c", "!!python/object:os.system {}",
                     "firewall: {allow: [22, 80/tcp]}", "files: [{path: /etc/motd, mode: 0644}]", "{", "]", "\t"]),
    max_size=12)))
def test_any_text_gives_a_recipe_or_a_bounded_error(text):
    try:
        recipe = parse_recipe_text(text)
    except RecipeError as err:
        assert err.errors and len(str(err)) <= MAX_MESSAGE
        return
    assert validate_recipe(recipe) == recipe
