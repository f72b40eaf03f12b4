"""What the mark reads from a stored manifest: the shortcut for plain manifests must find what
the full parse finds, and anything unusual must go to the full parse (or keep every digest); and
what it follows from there."""

from __future__ import annotations

import json
from typing import Any

import pytest

from registry.lifecycle.digests import raw
from registry.lifecycle.inventory import Inventory
from registry.lifecycle.manifest_references import References, references_of
from registry.lifecycle.mark import plan
from registry.references import Digest, RepositoryName

CONFIG, LAYER, OTHER, SUBJECT = (Digest.of(name.encode()) for name in ("config", "layer", "other", "subject"))
CHILD = Digest.of(b"child")


def descriptor(
    digest: Digest, media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip"
) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(digest), "size": 3}


def image(**extra: Any) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor(CONFIG, "application/vnd.oci.image.config.v1+json"),
        "layers": [descriptor(LAYER), descriptor(OTHER)],
        **extra,
    }


def index(**extra: Any) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [descriptor(CHILD, "application/vnd.oci.image.manifest.v1+json")],
        **extra,
    }


def refs(
    blobs: frozenset[Digest] = frozenset(),
    children: frozenset[Digest] = frozenset(),
    subject: Digest | None = None,
) -> References:
    """References as the mark keeps them: raw digests."""
    return References(
        frozenset(map(raw, blobs)), frozenset(map(raw, children)), raw(subject) if subject else None
    )


def encoded(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=3).encode()


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (image(), refs(frozenset({CONFIG, LAYER, OTHER}))),
        (image(subject=descriptor(SUBJECT)), refs(frozenset({CONFIG, LAYER, OTHER}), subject=SUBJECT)),
        (image(annotations={"note": "plain"}), refs(frozenset({CONFIG, LAYER, OTHER}))),
        (index(), refs(children=frozenset({CHILD}))),
        (index(subject=descriptor(SUBJECT)), refs(children=frozenset({CHILD}), subject=SUBJECT)),
        # A non-distributable layer with URLs is not stored here: the full parse leaves it out.
        (
            image(
                layers=[
                    {
                        **descriptor(OTHER, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
                        "urls": ["https://example.com/layer"],
                    }
                ]
            ),
            refs(frozenset({CONFIG})),
        ),
        # An annotation refers to nothing, even when it holds a digest.
        (image(annotations={"built-from": str(SUBJECT)}), refs(frozenset({CONFIG, LAYER, OTHER}))),
        # What the full parse refuses keeps every digest written in it, as blobs.
        ({"schemaVersion": 1, "fsLayers": [{"blobSum": str(LAYER)}]}, refs(frozenset({LAYER}))),
        (image(layers=[{"digest": str(LAYER)}]), refs(frozenset({CONFIG, LAYER}))),
        (image(unknown=str(OTHER)), refs(frozenset({CONFIG, LAYER, OTHER}))),
    ],
    ids=[
        "image",
        "image-with-subject",
        "annotations",
        "index",
        "index-with-subject",
        "foreign-layer",
        "digest-in-annotation",
        "schema1",
        "invalid-descriptor",
        "unknown-field",
    ],
)
def test_references_as_the_full_parse_finds_them(document: dict[str, Any], expected: References) -> None:
    assert references_of(encoded(document)) == expected


def test_a_malformed_digest_sends_the_manifest_to_the_full_parse() -> None:
    upper = image(layers=[{**descriptor(LAYER), "digest": f"sha256:{LAYER.hex.upper()}"}])
    assert references_of(encoded(upper)) == refs(frozenset({CONFIG}))
    assert references_of(b"\xff not json " + str(LAYER).encode()) == refs(frozenset({LAYER}))


def test_a_refused_index_keeps_its_children_as_children() -> None:
    """The shortcut does not check sizes; an index the full parse refuses then keeps its children
    as children (kept manifests with --delete-untagged), not only their blobs: more, never less."""
    refused = index(manifests=[{**descriptor(CHILD), "size": "three"}])
    assert references_of(encoded(refused)) == refs(children=frozenset({CHILD}))


def test_a_digest_written_escaped_leaves_the_decision_to_the_full_parse() -> None:
    """JSON may write the config's digest as ``sha256\\u003a...``: then the digest in the
    annotation is not one the shortcut names, and the full parse (which refuses the size) keeps
    every digest it finds written out."""
    document = image(annotations={"from": str(SUBJECT)})
    document["layers"][0]["size"] = "three"
    text = encoded(document).replace(str(CONFIG).encode(), f"sha256\\u003a{CONFIG.hex}".encode())
    assert json.loads(text)["config"]["digest"] == str(CONFIG)
    assert references_of(text) == refs(frozenset({LAYER, OTHER, SUBJECT}))


def test_the_mark_follows_what_it_read_past_manifests_whose_content_is_missing() -> None:
    top, gone = Digest.of(b"index"), Digest.of(b"gone")
    inventory = Inventory()
    for digest in (CONFIG, LAYER, OTHER, CHILD, top, gone):
        inventory.blobs[digest] = (3, 1.0)
    inventory.repository(RepositoryName.parse("team/app")).revisions = {top: 1.0, gone: 1.0}
    inventory.manifests = {
        raw(top): refs(children=frozenset({CHILD, gone})),
        raw(gone): None,
        raw(CHILD): refs(blobs=frozenset({CONFIG, LAYER})),
    }
    result = plan(inventory, delete_untagged=False, cutoff=2.0)
    assert set(result.blobs) == {OTHER}
