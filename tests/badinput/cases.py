"""Malformed requests, each on every endpoint and method it applies to.

A case's request target may hold placeholders the sweep fills in from the
registry's known content: ``{repo}`` (a repository holding ``{blob}`` and the
manifest ``{manifest}`` tagged ``latest``), ``{upload}`` (a fresh upload
session of ``{repo}``) and ``{other_upload}`` (one of another repository).
``codes`` are the error codes that make sense for the case.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.badinput.conftest import ESCAPE_MARKER, Target
from tests.support.images import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST
from tests.support.pushing import descriptor

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
HEX64 = "a" * 64
UUID = "0f0e0d0c-0b0a-4908-8706-050403020100"
MAX_MANIFEST = 4 << 20

Body = bytes | Callable[[Target], bytes] | None


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    target: str
    codes: frozenset[str]
    headers: tuple[tuple[str, str], ...] = ()
    body: Body = None
    chunked: bool = False
    statuses: frozenset[int] = field(default_factory=lambda: frozenset(range(400, 500)))
    protocol_level: bool = False
    """The HTTP server itself refuses the request line, before the application sees it: a plain
    400, without the registry's error JSON."""

    def request_target(self, target: Target) -> bytes:
        text = self.target.replace("{repo}", target.repository).replace("{blob}", target.blob)
        text = text.replace("{manifest}", target.manifest_digest)
        if "{upload}" in text:
            text = text.replace("{upload}", target.fresh_upload())
        if "{other_upload}" in text:
            text = text.replace("{other_upload}", target.fresh_upload("badinput/other"))
        return text.encode("utf-8", "surrogateescape")

    def request_body(self, target: Target) -> bytes | None:
        return self.body(target) if callable(self.body) else self.body


def codes(*names: str) -> frozenset[str]:
    return frozenset(names)


# --- repository names -------------------------------------------------------------------------

BAD_NAMES = {
    "dotdot": "..",
    "dotdot-inside": "a/../../../../" + ESCAPE_MARKER,
    "encoded-dotdot": "%2e%2e",
    "encoded-dotdot-upper": "%2E%2E/x",
    "encoded-dotdot-climb": "a/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/" + ESCAPE_MARKER,
    "encoded-slash": "a%2Fb",
    "encoded-slash-climb": "..%2F..%2F..%2F..%2F..%2F" + ESCAPE_MARKER,
    "encoded-backslash-climb": "..%5C..%5C" + ESCAPE_MARKER,
    "upper-case": "Team/App",
    "256-characters": "a" * 256,
    "long-components": "/".join(["abcdefghijklmnop"] * 16),
    "4096-characters": "b" * 4096,
    "leading-separator": "-app",
    "trailing-separator": "app-",
    "leading-dot": ".app",
    "trailing-dot": "app.",
    "leading-underscore": "_app",
    "component-leading-dash": "team/-app",
    "triple-underscore": "a___b",
    "double-dot-separator": "a..b",
    "unicode-encoded": "caf%C3%A9",
    "fullwidth-dots": "%EF%BC%8E%EF%BC%8E/x",
    "zero-width-space": "a%E2%80%8Bb",
    "nul": "a%00",
    "nul-then-climb": "a%00/../" + ESCAPE_MARKER,
    "invalid-utf8": "a%ff",
    "bad-percent": "a%zz",
    "space": "a%20b",
    "reserved-catalog": "_catalog",
    "empty": "",
    "only-slash": "/",
    "empty-component": "badinput//base",
    "leading-slash": "/badinput/base",
    "trailing-slash": "badinput/base/",
    "empty-components-at-end": "badinput/base/x//",
}
NAME_CODES = codes("NAME_INVALID", "UNSUPPORTED")


def _valid_manifest(target: Target) -> bytes:
    return target.manifest


NAME_ENDPOINTS: list[tuple[str, str, Body, tuple[tuple[str, str], ...]]] = [
    ("GET", "/v2/{N}/tags/list", None, ()),
    ("GET", "/v2/{N}/manifests/latest", None, ()),
    ("HEAD", "/v2/{N}/manifests/latest", None, ()),
    ("PUT", "/v2/{N}/manifests/latest", _valid_manifest, (("Content-Type", OCI_MANIFEST),)),
    ("DELETE", "/v2/{N}/manifests/latest", None, ()),
    ("GET", "/v2/{N}/blobs/{blob}", None, ()),
    ("HEAD", "/v2/{N}/blobs/{blob}", None, ()),
    ("DELETE", "/v2/{N}/blobs/{blob}", None, ()),
    ("POST", "/v2/{N}/blobs/uploads/", None, ()),
    ("POST", "/v2/{N}/blobs/uploads/?digest={blob}", b"data", ()),
    ("POST", "/v2/{N}/blobs/uploads/?mount={blob}&from={repo}", None, ()),
    ("GET", "/v2/{N}/blobs/uploads/{upload}", None, ()),
    ("PATCH", "/v2/{N}/blobs/uploads/{upload}", b"data", ()),
    ("PUT", "/v2/{N}/blobs/uploads/{upload}?digest={blob}", b"data", ()),
    ("DELETE", "/v2/{N}/blobs/uploads/{upload}", None, ()),
    ("GET", "/v2/{N}/referrers/{manifest}", None, ()),
]


def name_cases() -> Iterator[Case]:
    for label, name in BAD_NAMES.items():
        for method, template, body, headers in NAME_ENDPOINTS:
            path = template.replace("{N}", name)
            yield Case(
                f"name-{label}-{method}-{_endpoint(template)}", method, path, NAME_CODES, headers, body
            )
    for method, template, body, headers in NAME_ENDPOINTS:
        path = template.replace("{N}", "caf\u00e9")  # raw UTF-8 bytes in the request line
        yield Case(
            f"name-unicode-raw-{method}-{_endpoint(template)}",
            method,
            path,
            NAME_CODES,
            headers,
            body,
            statuses=frozenset({400}),
            protocol_level=True,
        )


def _endpoint(template: str) -> str:
    path, _, query = template.partition("?")
    parts = [p for p in path.split("/")[3:] if p and not p.startswith("{")]
    return "-".join(parts) + ("-" + query.split("=")[0] if query else "")


# --- tags ---------------------------------------------------------------------------------------

BAD_TAGS = {
    "129-characters": "t" * 129,
    "leading-dot": ".hidden",
    "leading-dash": "-dash",
    "dotdot": "..",
    "encoded-dotdot": "%2e%2e",
    "encoded-slash": "a%2F..%2F..%2F" + ESCAPE_MARKER,
    "star": "a*",
    "plus": "a+b",
    "space": "a%20b",
    "nul": "a%00",
    "unicode": "t%C3%A9",
    "tilde": "~latest",
}
TAG_CODES = codes("TAG_INVALID", "UNSUPPORTED")


def tag_cases() -> Iterator[Case]:
    put = (("Content-Type", OCI_MANIFEST),)
    for label, tag in BAD_TAGS.items():
        path = f"/v2/{{repo}}/manifests/{tag}"
        yield Case(f"tag-{label}-GET", "GET", path, TAG_CODES | {"MANIFEST_UNKNOWN"})
        yield Case(f"tag-{label}-HEAD", "HEAD", path, TAG_CODES | {"MANIFEST_UNKNOWN"})
        yield Case(f"tag-{label}-PUT", "PUT", path, TAG_CODES, put, _valid_manifest)
        yield Case(f"tag-{label}-DELETE", "DELETE", path, TAG_CODES | {"MANIFEST_UNKNOWN"})
        yield Case(
            f"tag-{label}-PUT-by-digest-with-tag-param",
            "PUT",
            f"/v2/{{repo}}/manifests/{{manifest}}?tag={tag}",
            TAG_CODES,
            put,
            _valid_manifest,
        )


# --- digests ------------------------------------------------------------------------------------

BAD_DIGESTS = {
    "short": "sha256:" + "a" * 63,
    "long": "sha256:" + "a" * 65,
    "uppercase-hex": "sha256:" + "A" * 64,
    "uppercase-algorithm": "SHA256:" + HEX64,
    "not-hex": "sha256:" + "g" * 64,
    "md5": "md5:" + "a" * 32,
    "unknown-algorithm": "blake9:" + HEX64,
    "sha512-with-sha256-length": "sha512:" + HEX64,
    "climb": "sha256:..%2F..%2F..%2F" + ESCAPE_MARKER,
    "climb-raw": "sha256:../../../" + ESCAPE_MARKER,
    "empty-hex": "sha256:",
    "empty-algorithm": ":" + HEX64,
    "nul": "sha256:%00" + "a" * 63,
    "huge": "sha256:" + "a" * 10000,
}
DIGEST_CODES = codes("DIGEST_INVALID", "UNSUPPORTED")
READ_DIGEST_CODES = DIGEST_CODES | {"BLOB_UNKNOWN", "MANIFEST_UNKNOWN"}


def digest_cases() -> Iterator[Case]:
    put = (("Content-Type", OCI_MANIFEST),)
    for label, digest in BAD_DIGESTS.items():
        for method in ("GET", "HEAD", "DELETE"):
            yield Case(
                f"digest-{label}-{method}-blob", method, f"/v2/{{repo}}/blobs/{digest}", READ_DIGEST_CODES
            )
            yield Case(
                f"digest-{label}-{method}-manifest",
                method,
                f"/v2/{{repo}}/manifests/{digest}",
                READ_DIGEST_CODES,
            )
        yield Case(
            f"digest-{label}-PUT-manifest",
            "PUT",
            f"/v2/{{repo}}/manifests/{digest}",
            DIGEST_CODES,
            put,
            _valid_manifest,
        )
        yield Case(
            f"digest-{label}-GET-referrers", "GET", f"/v2/{{repo}}/referrers/{digest}", READ_DIGEST_CODES
        )
        yield Case(
            f"digest-{label}-POST-monolithic",
            "POST",
            f"/v2/{{repo}}/blobs/uploads/?digest={digest}",
            DIGEST_CODES,
            (),
            b"data",
        )
        yield Case(
            f"digest-{label}-POST-mount",
            "POST",
            f"/v2/{{repo}}/blobs/uploads/?mount={digest}&from=badinput/other",
            DIGEST_CODES,
        )
        yield Case(
            f"digest-{label}-PUT-upload",
            "PUT",
            f"/v2/{{repo}}/blobs/uploads/{{upload}}?digest={digest}",
            DIGEST_CODES,
            (),
            b"data",
        )
    yield Case(
        "digest-missing-PUT-upload", "PUT", "/v2/{repo}/blobs/uploads/{upload}", DIGEST_CODES, (), b"data"
    )
    yield Case(
        "digest-empty-PUT-upload",
        "PUT",
        "/v2/{repo}/blobs/uploads/{upload}?digest=",
        DIGEST_CODES,
        (),
        b"data",
    )
    yield Case("digest-empty-GET-blob", "GET", "/v2/{repo}/blobs/", codes("UNSUPPORTED"))


# --- upload ids -----------------------------------------------------------------------------------

BAD_UPLOADS = {
    "not-a-uuid": "not-a-uuid",
    "uuid-with-junk": UUID + "x",
    "uppercase-uuid": UUID.upper(),
    "never-issued": UUID,
    "dotdot": "..",
    "encoded-dotdot": "%2e%2e",
    "encoded-climb": "..%2F..%2F..%2F" + ESCAPE_MARKER,
    "nul": UUID[:-1] + "%00",
    "huge": "u" * 5000,
    "other-repository": "{other_upload}",
}
UPLOAD_CODES = codes("BLOB_UPLOAD_UNKNOWN", "UNSUPPORTED")


def upload_cases() -> Iterator[Case]:
    for label, upload in BAD_UPLOADS.items():
        path = f"/v2/{{repo}}/blobs/uploads/{upload}"
        yield Case(f"upload-{label}-GET", "GET", path, UPLOAD_CODES)
        yield Case(f"upload-{label}-PATCH", "PATCH", path, UPLOAD_CODES, (), b"data")
        yield Case(f"upload-{label}-PUT", "PUT", f"{path}?digest={{blob}}", UPLOAD_CODES, (), b"data")
        yield Case(f"upload-{label}-DELETE", "DELETE", path, UPLOAD_CODES)


# --- Content-Range and Range ----------------------------------------------------------------------

BAD_CONTENT_RANGES = {
    "garbage": "garbage",
    "words": "bytes=abc-def",
    "negative": "-5-4",
    "negative-end": "0--1",
    "reversed": "9-0",
    "huge-end": "0-99999999999999999999",
    "huge-start": "99999999999999999990-99999999999999999999",
    "not-continuing": "10-19",
    "several": "0-4, 5-9",
    "empty": "",
    "latin1": "0-9\u00e9",
}
CONTENT_RANGE_CODES = codes("BLOB_UPLOAD_INVALID", "SIZE_INVALID", "RANGE_INVALID")

BAD_RANGES = {
    "garbage": "garbage",
    "no-unit": "0-10",
    "other-unit": "items=0-1",
    "empty-spec": "bytes=",
    "only-dash": "bytes=-",
    "words": "bytes=abc-def",
    "negative": "bytes=-5-10",
    "zero-suffix": "bytes=-0",
    "reversed": "bytes=10-5",
    "beyond-end": "bytes=999999-",
    "huge-start": "bytes=99999999999999999999-",
    "several": "bytes=0-1,3-4",
}
RANGE_CODES = codes("SIZE_INVALID", "RANGE_INVALID")


def range_cases() -> Iterator[Case]:
    chunk = b"0123456789"
    for label, value in BAD_CONTENT_RANGES.items():
        headers = (("Content-Range", value),)
        upload = "/v2/{repo}/blobs/uploads/{upload}"
        yield Case(f"content-range-{label}-PATCH", "PATCH", upload, CONTENT_RANGE_CODES, headers, chunk)
        yield Case(
            f"content-range-{label}-PUT",
            "PUT",
            upload + "?digest=sha256:84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882",
            CONTENT_RANGE_CODES,
            headers,
            chunk,
        )
    for label, value in BAD_RANGES.items():
        yield Case(
            f"range-{label}-GET-blob", "GET", "/v2/{repo}/blobs/{blob}", RANGE_CODES, (("Range", value),)
        )


# --- manifests ------------------------------------------------------------------------------------


def _document(target: Target, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, target.config),
        "layers": [descriptor(OCI_LAYER, target.layer)],
    }
    document.update(changes)
    return {k: v for k, v in document.items() if v is not _DROP}


_DROP = object()


def _json(**changes: Any) -> Callable[[Target], bytes]:
    return lambda target: json.dumps(_document(target, **changes)).encode()


def _changed(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in {**base, **changes}.items() if v is not _DROP}


def _config(**changes: Any) -> Callable[[Target], bytes]:
    return lambda target: json.dumps(
        _document(target, config=_changed(descriptor(OCI_CONFIG, target.config), changes))
    ).encode()


def _layer(**changes: Any) -> Callable[[Target], bytes]:
    return lambda target: json.dumps(
        _document(target, layers=[_changed(descriptor(OCI_LAYER, target.layer), changes)])
    ).encode()


def _raw_replace(old: str, new: str) -> Callable[[Target], bytes]:
    def build(target: Target) -> bytes:
        text = json.dumps(_document(target))
        assert old in text
        return text.replace(old, new, 1).encode()

    return build


def _config_size(literal: str) -> Callable[[Target], bytes]:
    def build(target: Target) -> bytes:
        text = json.dumps(_document(target))
        size = f'"size": {len(target.config)}'
        assert size in text
        return text.replace(size, f'"size": {literal}', 1).encode()

    return build


def _schema1(target: Target) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 1,
            "name": "badinput/base",
            "tag": "bad",
            "architecture": "amd64",
            "fsLayers": [{"blobSum": target.blob}],
            "history": [{"v1Compatibility": "{}"}],
        }
    ).encode()


def _nested(depth: int, opening: str, closing: str, inner: str) -> Callable[[Target], bytes]:
    def build(target: Target) -> bytes:
        text = json.dumps(_document(target))
        return (text[:-1] + ', "deep": ' + opening * depth + inner + closing * depth + "}").encode()

    return build


def _padded(size: int) -> Callable[[Target], bytes]:
    def build(target: Target) -> bytes:
        base = json.dumps(_document(target, annotations={"pad": ""})).encode()
        return base.replace(b'"pad": ""', b'"pad": "' + b"x" * (size - len(base)) + b'"')

    return build


def _duplicate_digest(target: Target) -> bytes:
    text = json.dumps(_document(target))
    layer = descriptor(OCI_LAYER, target.layer)["digest"]
    return text.replace(f'"digest": "{layer}"', f'"digest": "sha256:{HEX64}", "digest": "{layer}"').encode()


MANIFEST_BODIES: dict[str, Body] = {
    "empty": b"",
    "truncated": b'{"schemaVersion": 2, "mediaType": ',
    "not-json": b"this is not json",
    "array": b"[]",
    "string": b'"manifest"',
    "null": b"null",
    "number": b"2",
    "nested-arrays-100000": _nested(100_000, "[", "]", ""),
    "nested-objects-100000": _nested(100_000, '{"a":', "}", "1"),
    "duplicate-top-level-key": _raw_replace('"schemaVersion": 2', '"schemaVersion": 2, "schemaVersion": 2'),
    "duplicate-digest-key": _duplicate_digest,
    "both-layers-and-manifests": _json(manifests=[]),
    "schema-version-1": _json(schemaVersion=1),
    "schema-version-3": _json(schemaVersion=3),
    "schema-version-string": _json(schemaVersion="2"),
    "schema-version-float": _raw_replace('"schemaVersion": 2', '"schemaVersion": 2.0'),
    "schema-version-bool": _json(schemaVersion=True),
    "schema-version-missing": _json(schemaVersion=_DROP),
    "media-type-number": _json(mediaType=5),
    "media-type-unknown": _json(mediaType="application/vnd.example+json"),
    "config-missing": _json(config=_DROP),
    "config-list": _json(config=[]),
    "config-string": _json(config="sha256:" + HEX64),
    "config-digest-number": _config(digest=5),
    "config-digest-invalid": _config(digest="sha256:../../" + ESCAPE_MARKER),
    "config-digest-missing": _config(digest=_DROP),
    "config-size-string": _config(size="38"),
    "config-size-negative": _config(size=-1),
    "config-size-float": _config(size=1.5),
    "config-size-bool": _config(size=True),
    "config-size-nan": _config_size("NaN"),
    "config-size-infinity": _config_size("-Infinity"),
    "config-size-overflow": _config_size("1e400"),
    "config-size-2^63": _config(size=2**63),
    "config-size-2^64": _config(size=2**64),
    "config-size-huge-integer": _config(size=10**400),
    "config-size-not-the-blobs": _config(size=1),
    "config-size-int64-max": _config(size=2**63 - 1),
    "layer-size-not-the-blobs": _layer(size=5),
    "config-media-type-number": _config(mediaType=5),
    "config-media-type-not-a-type": _config(mediaType="not a media type"),
    "config-media-type-empty": _config(mediaType=""),
    "layers-missing": _json(layers=_DROP),
    "layers-object": _json(layers={}),
    "layers-string": _json(layers="layer"),
    "layer-number": _json(layers=[5]),
    "layer-null": _json(layers=[None]),
    "layer-urls-string": _layer(urls="http://example.com/layer"),
    "layer-urls-numbers": _layer(urls=[1, 2]),
    "layer-annotations-number-value": _layer(annotations={"a": 1}),
    "layer-platform-string": _layer(platform="linux"),
    "annotations-list": _json(annotations=["a"]),
    "annotations-number-value": _json(annotations={"a": 1}),
    "subject-string": _json(subject="sha256:" + HEX64),
    "subject-empty": _json(subject={}),
    "artifact-type-number": _json(artifactType=5),
    "non-utf8": lambda target: (
        json.dumps(_document(target, annotations={"a": "x"})).encode().replace(b'"x"', b'"\xff\xfe"')
    ),
    "utf16": lambda target: json.dumps(_document(target)).encode("utf-16"),
    "utf8-bom": lambda target: b"\xef\xbb\xbf" + json.dumps(_document(target)).encode(),
}
MANIFEST_CODES = codes("MANIFEST_INVALID")


def _index(target: Target, **changes: Any) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, target.manifest)],
        **changes,
    }
    return json.dumps({k: v for k, v in document.items() if v is not _DROP}).encode()


INDEX_BODIES: dict[str, Callable[[Target], bytes]] = {
    "index-manifests-object": lambda t: _index(t, manifests={}),
    "index-manifests-strings": lambda t: _index(t, manifests=["sha256:" + HEX64]),
    "index-manifests-missing": lambda t: _index(t, manifests=_DROP),
    "index-with-layers": lambda t: _index(t, layers=[descriptor(OCI_LAYER, t.layer)]),
    "index-with-config": lambda t: _index(t, config=descriptor(OCI_CONFIG, t.config)),
    "index-child-platform-string": lambda t: _index(
        t, manifests=[descriptor(OCI_MANIFEST, t.manifest, platform="linux/amd64")]
    ),
}


def manifest_cases() -> Iterator[Case]:
    path = "/v2/{repo}/manifests/bad"
    oci = (("Content-Type", OCI_MANIFEST),)
    for label, body in MANIFEST_BODIES.items():
        yield Case(f"manifest-{label}", "PUT", path, MANIFEST_CODES, oci, body)
    for label, index_body in INDEX_BODIES.items():
        yield Case(
            f"manifest-{label}", "PUT", path, MANIFEST_CODES, (("Content-Type", OCI_INDEX),), index_body
        )
    mismatches = {
        "index-body-manifest-header": (OCI_MANIFEST, _index),
        "oci-body-docker-header": (DOCKER_MANIFEST, _valid_manifest),
        "oci-body-index-header": (OCI_INDEX, _valid_manifest),
        "schema1-header": (DOCKER_SCHEMA1, _valid_manifest),
        "schema1-body-and-header": (DOCKER_SCHEMA1, _schema1),
        "schema1-body-oci-header": (OCI_MANIFEST, _schema1),
        "html-header": ("text/html", _valid_manifest),
        "config-type-header": (OCI_CONFIG, _valid_manifest),
    }
    for label, (content_type, build) in mismatches.items():
        yield Case(f"manifest-{label}", "PUT", path, MANIFEST_CODES, (("Content-Type", content_type),), build)
    too_large = codes("SIZE_INVALID", "MANIFEST_INVALID")
    yield Case(
        "manifest-over-4MiB",
        "PUT",
        path,
        too_large,
        oci,
        _padded(MAX_MANIFEST + 1),
        statuses=frozenset({413}),
    )
    yield Case(
        "manifest-over-4MiB-chunked",
        "PUT",
        path,
        too_large,
        oci,
        _padded(MAX_MANIFEST + 65536),
        chunked=True,
        statuses=frozenset({413}),
    )
    yield Case(
        "manifest-huge-declared-length",
        "PUT",
        path,
        too_large,
        (*oci, ("Content-Length", str(10 << 30))),
        b"{}",
        statuses=frozenset({413}),
    )


# --- query parameters and methods ---------------------------------------------------------------

PAGINATION_CODES = codes("PAGINATION_NUMBER_INVALID")


def query_cases() -> Iterator[Case]:
    for label, value in {
        "negative": "-1",
        "words": "abc",
        "huge": "99999999999",
        "fraction": "1.5",
        "exponent": "1e3",
        "nul": "%00",
        "plus": "%2B5",
        "unicode-digits": "%EF%BC%95",
        "superscript-digit": "%C2%B2",
    }.items():
        yield Case(f"query-n-{label}-tags", "GET", f"/v2/{{repo}}/tags/list?n={value}", PAGINATION_CODES)
        yield Case(f"query-n-{label}-catalog", "GET", f"/v2/_catalog?n={value}", PAGINATION_CODES)
    algorithm_codes = DIGEST_CODES
    for value in ("md5", "sha1", "", "..%2F" + ESCAPE_MARKER, "SHA256"):
        yield Case(
            f"query-digest-algorithm-{value or 'empty'}",
            "POST",
            f"/v2/{{repo}}/blobs/uploads/?digest-algorithm={value}",
            algorithm_codes,
        )
    for label, query in {
        "junk": "mount=junk&from=badinput/other",
        "junk-without-from": "mount=junk",
        "empty": "mount=&from=badinput/other",
    }.items():
        yield Case(f"query-mount-{label}", "POST", f"/v2/{{repo}}/blobs/uploads/?{query}", DIGEST_CODES)
    for label, source in {
        "dotdot": "..",
        "encoded-dotdot": "%2e%2e",
        "climb": "..%2F..%2F" + ESCAPE_MARKER,
        "upper": "Other",
        "nul": "a%00",
        "empty": "",
        "empty-component": "badinput//other",
        "encoded-empty-component": "badinput%2F%2Fother",
        "leading-slash": "/badinput/other",
        "trailing-slash": "badinput/other/",
    }.items():
        yield Case(
            f"query-from-{label}",
            "POST",
            f"/v2/{{repo}}/blobs/uploads/?mount={{blob}}&from={source}",
            codes("NAME_INVALID"),
        )
    oci = (("Content-Type", OCI_MANIFEST),)
    yield Case(
        "query-tag-with-tag-reference",
        "PUT",
        "/v2/{repo}/manifests/latest?tag=other",
        TAG_CODES,
        oci,
        _valid_manifest,
    )
    yield Case(
        "query-tag-empty", "PUT", "/v2/{repo}/manifests/{manifest}?tag=", TAG_CODES, oci, _valid_manifest
    )
    yield Case(
        "query-tag-too-many",
        "PUT",
        "/v2/{repo}/manifests/{manifest}?" + "&".join(f"tag=t{i}" for i in range(1000)),
        TAG_CODES,
        oci,
        _valid_manifest,
    )


def method_cases() -> Iterator[Case]:
    not_allowed = codes("UNSUPPORTED")
    for method, path in [
        ("POST", "/v2/"),
        ("PUT", "/v2/_catalog"),
        ("DELETE", "/v2/_catalog"),
        ("POST", "/v2/{repo}/tags/list"),
        ("PATCH", "/v2/{repo}/manifests/latest"),
        ("POST", "/v2/{repo}/manifests/latest"),
        ("PUT", "/v2/{repo}/blobs/{blob}"),
        ("PATCH", "/v2/{repo}/blobs/{blob}"),
        ("GET", "/v2/{repo}/blobs/uploads/"),
        ("PUT", "/v2/{repo}/blobs/uploads/"),
        ("POST", "/v2/{repo}/blobs/uploads/{upload}"),
        ("DELETE", "/v2/{repo}/referrers/{manifest}"),
        ("OPTIONS", "/v2/{repo}/manifests/latest"),
        ("GET", "/v3/"),
        ("GET", "/v2/{repo}/unknown/thing"),
    ]:
        label = path.strip("/").replace("/", "-").replace("{", "").replace("}", "")
        yield Case(f"method-{method}-{label}", method, path, not_allowed)


def all_cases() -> list[Case]:
    cases = [
        *name_cases(),
        *tag_cases(),
        *digest_cases(),
        *upload_cases(),
        *range_cases(),
        *manifest_cases(),
        *query_cases(),
        *method_cases(),
    ]
    ids = [case.id for case in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return cases
