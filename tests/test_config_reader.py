"""The one configuration reader: its typed accessors, its messages, and the one duration syntax
every section reads (Go's ``time.ParseDuration``, plus a bare integer of seconds)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from config_reader import Section, parse_address, parse_duration, read_named_file
from registry.config import ConfigError, load_config
from storage_drivers import DRIVERS

# --- durations ----------------------------------------------------------------------------------

GO_DURATIONS = [
    ("168h", 168 * 3600.0),
    ("2h10m", 7800.0),
    ("1.5s", 1.5),
    ("500ms", 0.5),
    (".5s", 0.5),
    ("5.s", 5.0),
    ("1h1m1s", 3661.0),
    ("3s1h", 3603.0),  # Go takes the units in any order
    ("1s1s", 2.0),
    ("+5m", 300.0),
    ("-1.5h", -5400.0),
    ("0", 0.0),
    ("-0", 0.0),
    ("0s", 0.0),
    ("100ns", 100e-9),
    ("7us", 7e-6),
    ("7\u00b5s", 7e-6),  # MICRO SIGN
    ("7\u03bcs", 7e-6),  # GREEK SMALL LETTER MU
    ("0.0000000015s", 1e-9),  # truncated to whole nanoseconds, as in Go
    ("2562047h", 2562047 * 3600.0),  # Go's longest duration is just above this
    (" 45m ", 2700.0),
]
SECONDS = [("300", 300.0), ("0", 0.0), ("86400", 86400.0), (300, 300.0)]
NOT_DURATIONS = [
    "", " ", "banana", "h", "1d", "1", "-", "+", ".", ".s", "1.2.3s", "1h30", "1 s", "1e3s", "-300",
    "s1", "1S", "\u0661\u0662s", "300.5", 1.5, None, True, ["1s"],
]  # fmt: skip


@pytest.mark.parametrize(("text", "seconds"), [*GO_DURATIONS, *SECONDS])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-12)


@pytest.mark.parametrize("text", [t for t in NOT_DURATIONS if t != "1"])
def test_not_durations(text: object) -> None:
    with pytest.raises(ValueError, match=r"is not a duration such as 300 \(seconds\), 90s, 45m"):
        parse_duration(text)


def test_a_bare_number_is_seconds_not_nanoseconds() -> None:
    """``1`` is one second: the one exception to Go's syntax, which would refuse it."""
    assert parse_duration("1") == 1.0


@pytest.mark.parametrize("text", ["2562048h", "9223372037s", "99999999999999999999"])
def test_durations_beyond_go_range_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="longer than the longest duration"):
        parse_duration(text)


# --- the reader ---------------------------------------------------------------------------------


def read(text: str) -> tuple[Section, list[str]]:
    """The whole file as the registry reads it: every scalar as the text written."""
    problems: list[str] = []
    return Section("", yaml.load(text, Loader=yaml.BaseLoader), problems), problems


def test_accessors_read_text_and_name_problems_by_dotted_path() -> None:
    root, problems = read(
        """
        top: 1
        outer:
          inner:
            on: "TRUE"
            off: false
            count: "42"
            wait: 1h30m
            name: dockyard
            one: a
            many: [a, b]
            level: WARNING
            url: https://registry.example.com/
            addr: "[::1]:5000"
            headers: {X-One: a, X-Two: [b, c]}
            items: [{x: "1"}, {x: "2"}]
        """.replace("\n        ", "\n")
    )
    inner = root.section("outer").section("inner")
    assert inner.name == "outer.inner"
    assert inner.flag("on") is True
    assert inner.flag("off", default=True) is False
    assert inner.integer("count", default=0, minimum=1) == 42
    assert inner.duration("wait", default=0) == 5400
    assert inner.string("name") == "dockyard"
    assert inner.string_list("one") == ["a"]
    assert inner.string_list("many") == ["a", "b"]
    assert inner.choice("level", ("error", "warn"), default="error", aliases={"warning": "warn"}) == "warn"
    assert inner.url("url") == "https://registry.example.com/"
    assert inner.address("addr", default=":5000") == "[::1]:5000"
    assert inner.string_lists("headers") == {"X-One": ["a"], "X-Two": ["b", "c"]}
    assert [item.integer("x", default=0, minimum=0) for item in inner.section_list("items")] == [1, 2]
    assert [item.name for item in inner.section_list("items")] == [
        "outer.inner.items[0]",
        "outer.inner.items[1]",
    ]
    assert problems == []


def test_every_problem_is_collected_and_each_accessor_falls_back_to_its_default() -> None:
    root, problems = read(
        """
        s:
          flag: maybe
          count: many
          small: "0"
          wait: soon
          short: 30s
          name: [not, a, string]
          list: {not: a list}
          level: loud
          url: registry.example.com
          path: metrics
          addr: nonsense
          items: just-text
          nested: text
          required: ""
        """.replace("\n        ", "\n")
    )
    s = root.section("s")
    assert s.flag("flag", default=True) is True
    assert s.integer("count", default=7, minimum=1) == 7
    assert s.integer("small", default=7, minimum=1, maximum=9) == 7
    assert s.duration("wait", default=5.0) == 5.0
    assert s.duration("short", default=60.0, minimum=60) == 60.0
    assert s.string("name", default="x") == "x"
    assert s.string_list("list") == []
    assert s.choice("level", ("error", "info"), default="info") == "info"
    assert s.url("url") is None
    assert s.url_path("path", default="/metrics") == "/metrics"
    assert s.string("required", required=True) == ""
    s.address("addr", default=":5000")
    assert s.section_list("items") == []
    assert dict(s.section("nested").values) == {}
    assert problems == [
        "s.flag: must be true or false",
        "s.count: must be an integer of at least 1",
        "s.small: must be an integer from 1 to 9",
        "s.wait: 'soon' is not a duration such as 300 (seconds), 90s, 45m, 2h10m or 168h",
        "s.short: must be at least 60 seconds",
        "s.name: must be a string",
        "s.list: must be a list of strings",
        "s.level: 'loud' is not one of error, info",
        "s.url: must be a URL such as https://registry.example.com",
        "s.path: must start with /",
        "s.required: required",
        "s.addr: 'nonsense' is not HOST:PORT",
        "s.items: must be a list of mappings",
        "s.nested: must be a mapping",
    ]


def test_a_list_of_mappings_skips_what_is_not_one() -> None:
    root, problems = read("s:\n  items:\n    - {a: '1'}\n    - text\n    - [1]\n    - {a: '4'}\n")
    items = root.section("s").section_list("items")
    assert [(item.name, item.integer("a", default=0, minimum=0)) for item in items] == [
        ("s.items[0]", 1),
        ("s.items[3]", 4),
    ]
    assert problems == ["s.items[1]: must be a mapping", "s.items[2]: must be a mapping"]


def test_a_key_with_nothing_after_it_is_absent_in_every_accessor() -> None:
    root, problems = read("s:\n  a:\n  b: ''\n  c: '  '\n")
    s = root.section("s")
    for key in ("a", "b", "c"):
        assert not s.given(key)
        assert s.flag(key, default=True) is True
        assert s.integer(key, default=3, minimum=1) == 3
        assert s.duration(key, default=9.0) == 9.0
        assert s.string(key, default="d") == "d"
        assert s.string_list(key) == []
        assert s.section_list(key) == []
        assert s.url(key) is None
        assert s.url_path(key, default="/d") == "/d"
        assert dict(s.section(key).values) == {}
    assert problems == []


def test_python_values_read_as_their_yaml_text_would() -> None:
    problems: list[str] = []
    s = Section("s", {"flag": True, "count": 5, "size": 8.0, "wait": 90, "bad": 1.5}, problems)
    assert s.flag("flag") is True
    assert s.integer("count", default=0, minimum=0) == 5
    assert s.integer("size", default=0, minimum=0) == 8
    assert s.duration("wait", default=0) == 90
    assert s.duration("bad", default=0) == 0
    assert problems == ["s.bad: 1.5 is not a duration such as 300 (seconds), 90s, 45m, 2h10m or 168h"]


def test_unknown_keys_are_rejected_or_collected_for_one_warning() -> None:
    problems: list[str] = []
    unsupported: list[str] = []
    root = Section("", {"a": {"x": 1, "y": 2, "z": 3}, "b": {"q": 1}, "c": 1}, problems, unsupported)
    root.warn_unknown({"a", "b"})
    root.section("a").warn_unknown({"x"})
    root.section("b").reject_unknown({"p", "r"})
    assert unsupported == ["c", "a.y", "a.z"]
    assert problems == ["b.q: unknown key (known: p, r)"]


def test_choice_answers_in_the_spelling_of_its_choices() -> None:
    problems: list[str] = []
    s = Section("s", {"class": "reduced_redundancy", "format": "LogStash"}, problems)
    assert s.choice("class", ("STANDARD", "REDUCED_REDUNDANCY"), default="STANDARD") == "REDUCED_REDUNDANCY"
    assert s.choice("format", ("text", "json"), default="text", aliases={"logstash": "json"}) == "json"
    assert s.choice("absent", ("text", "json"), default="text") == "text"
    assert problems == []


@pytest.mark.parametrize(
    "addr", ["localhost:99999", ":65536", "127.0.0.1:", "nonsense", "host:5000:1", ":\uff15\uff10"]
)
def test_address_needs_host_and_port(addr: str) -> None:
    problems: list[str] = []
    Section("http", {"addr": addr}, problems).address("addr", default=":5000")
    assert problems == [f"http.addr: {addr!r} is not HOST:PORT"]
    # What listens splits the address with the same syntax, refusing it in the same words.
    with pytest.raises(ValueError, match=r"^" + re.escape(f"{addr!r} is not HOST:PORT") + "$"):
        parse_address(addr)


@pytest.mark.parametrize(
    ("addr", "host", "port"),
    [
        (":5000", "0.0.0.0", 5000),
        ("127.0.0.1:0", "127.0.0.1", 0),
        ("[::1]:5000", "::1", 5000),
        ("[::]:443", "::", 443),
        ("registry.example.com:65535", "registry.example.com", 65535),
    ],
)
def test_an_address_splits_into_the_host_and_port_to_listen_on(addr: str, host: str, port: int) -> None:
    assert parse_address(addr) == (host, port)
    problems: list[str] = []
    assert Section("http", {"addr": addr}, problems).address("addr", default=":5000") == addr
    assert problems == []


def test_existing_file(tmp_path: Path) -> None:
    present = tmp_path / "present"
    present.write_text("x")
    problems: list[str] = []
    s = Section("t", {"present": str(present), "absent": str(tmp_path / "absent")}, problems)
    assert s.existing_file("present") == present
    assert s.existing_file("absent") is None
    assert s.existing_file("missing", required=True) is None
    assert problems == [f"t.absent: {tmp_path / 'absent'}: no such file", "t.missing: required"]


def test_sections_not_yet_implemented_read_without_new_parsing_code() -> None:
    """Distribution's notifications, health and proxy sections, read with the accessors the
    registry already has: every key type they use is one of them."""
    root, problems = read(
        """
        notifications:
          events: {includereferences: true}
          endpoints:
            - name: alistener
              disabled: false
              url: https://my.listener.com/event
              headers: {Authorization: [Bearer <token>]}
              timeout: 1s
              threshold: 10
              backoff: 1s
              ignoredmediatypes: [application/octet-stream]
              ignore: {mediatypes: [application/octet-stream], actions: [pull]}
        health:
          storagedriver: {enabled: true, interval: 10s, threshold: 3}
          http:
            - {uri: "http://server.to.check/must/return/200", statuscode: 200, timeout: 3s, interval: 10s}
          tcp:
            - {addr: "redis-server.domain.com:6379", timeout: 3s, interval: 10s, threshold: 3}
        proxy:
          remoteurl: https://registry-1.docker.io
          username: user
          password: secret
          ttl: 168h
        http:
          debug:
            addr: localhost:5001
            prometheus: {enabled: true, path: /metrics}
        """.replace("\n        ", "\n")
    )
    notifications = root.section("notifications")
    assert notifications.section("events").flag("includereferences") is True
    [endpoint] = notifications.section_list("endpoints")
    endpoint.reject_unknown(
        {
            "name",
            "disabled",
            "url",
            "headers",
            "timeout",
            "threshold",
            "backoff",
            "ignoredmediatypes",
            "ignore",
        }
    )
    assert endpoint.url("url") == "https://my.listener.com/event"
    assert endpoint.string_lists("headers") == {"Authorization": ["Bearer <token>"]}
    assert (endpoint.duration("timeout", default=0), endpoint.duration("backoff", default=0)) == (1, 1)
    assert endpoint.integer("threshold", default=0, minimum=0) == 10
    assert endpoint.section("ignore").string_list("actions") == ["pull"]
    health = root.section("health")
    assert health.section("storagedriver").duration("interval", default=0) == 10
    [check] = health.section_list("http")
    assert check.integer("statuscode", default=200, minimum=100, maximum=599) == 200
    assert check.url("uri") == "http://server.to.check/must/return/200"
    [tcp] = health.section_list("tcp")
    assert tcp.address("addr", default="") == "redis-server.domain.com:6379"
    proxy = root.section("proxy")
    assert proxy.url("remoteurl") == "https://registry-1.docker.io"
    assert proxy.duration("ttl", default=0) == 168 * 3600
    debug = root.section("http").section("debug")
    assert debug.address("addr", default="") == "localhost:5001"
    assert debug.section("prometheus").string("path") == "/metrics"
    assert problems == []


def test_storage_driver_names_come_from_the_driver_registry(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"version": "0.1", "storage": {"azure": {"accountname": "a"}}}))
    with pytest.raises(ConfigError) as raised:
        load_config(path, {})
    assert raised.value.problems == [f"storage.azure: unsupported driver (supported: {', '.join(DRIVERS)})"]
    assert set(DRIVERS) == {"filesystem", "inmemory", "s3"}


def test_a_named_file_that_cannot_be_read_is_one_problem(tmp_path: Path) -> None:
    present = tmp_path / "present"
    present.write_bytes(b"\x00pem")
    problems: list[str] = []
    assert read_named_file(present, problems, "auth.token.jwks") == b"\x00pem"
    assert read_named_file(tmp_path / "absent", problems, "tokenserver.signingkey") is None
    assert read_named_file(tmp_path, problems, "tokenserver.certificate") is None
    assert problems == [
        f"tokenserver.signingkey: cannot read {tmp_path / 'absent'}: No such file or directory",
        f"tokenserver.certificate: cannot read {tmp_path}: Is a directory",
    ]
