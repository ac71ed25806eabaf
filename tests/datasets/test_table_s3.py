"""Feature tables on a real S3 (SeaweedFS on 127.0.0.1, the session's ``s3`` fixture)."""

import os

import numpy as np
import pytest

from avspot.datasets.errors import DataError
from avspot.datasets.inspect import inspect_table
from avspot.datasets.manifest import MANIFEST_NAME, read_manifest
from avspot.datasets.synth import synthesize
from avspot.datasets.table import iter_halves, list_halves, read_halves, write_table

pytestmark = pytest.mark.integration


def _keys(s3, uri):
    prefix = uri.split("/", 3)[3] + "/"
    resp = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    return sorted(o["Key"][len(prefix) :] for o in resp.get("Contents", []))


def test_round_trip_s3(s3, half_factory, tmp_path):
    assert os.environ["AWS_ENDPOINT_URL"] == s3.endpoint  # the fixture set the environment
    uri = s3.uri("rt")
    halves = [
        half_factory(game=f"l/s/g{i}", half=h, split=("train", "valid", "test")[i], seed=i * 2 + h)
        for i in range(3)
        for h in (1, 2)
    ]
    m = write_table(halves, uri, source="unit", seed=1)
    local = write_table(halves, str(tmp_path / "local"), source="unit", seed=1)
    assert m.fingerprint == local.fingerprint
    assert read_manifest(uri).fingerprint == m.fingerprint
    got = {(h.game, h.half): h for h in iter_halves(uri)}
    for h in halves:
        np.testing.assert_array_equal(got[(h.game, h.half)].video, h.video)
        np.testing.assert_array_equal(got[(h.game, h.half)].audio, h.audio)
        assert got[(h.game, h.half)].events == h.events
    assert list_halves(uri, "valid") == [("l/s/g1", 1), ("l/s/g1", 2)]
    keys = _keys(s3, uri)
    assert MANIFEST_NAME in keys
    assert all(k == MANIFEST_NAME or k.startswith("v-") and "/split=" in k for k in keys)
    assert "manifest.json" not in str(m.to_dict()["params"])  # nothing odd in the manifest
    text = (
        s3.client()
        .get_object(Bucket=s3.bucket, Key=uri.split("/", 3)[3] + "/" + MANIFEST_NAME)["Body"]
        .read()
        .decode()
    )
    assert s3.env["AWS_SECRET_ACCESS_KEY"] not in text and s3.env["AWS_ACCESS_KEY_ID"] not in text
    assert inspect_table(uri)["halves"] == 6


def test_overwrite_and_refuse_s3(s3, half_factory):
    uri = s3.uri("ow")
    write_table([half_factory(seed=1)], uri, source="unit")
    first = [k for k in _keys(s3, uri) if k != MANIFEST_NAME]
    with pytest.raises(DataError, match="already exists"):
        write_table([half_factory(seed=2)], uri, source="unit")
    m = write_table([half_factory(seed=2)], uri, source="unit", overwrite=True)
    assert read_manifest(uri).fingerprint == m.fingerprint
    np.testing.assert_array_equal(read_halves(uri)[0].video, half_factory(seed=2).video)
    keys = _keys(s3, uri)
    assert not set(first) & set(keys)  # the old version's files were removed after the commit


def test_failed_write_s3_leaves_nothing_readable(s3, half_factory):
    uri = s3.uri("fail")

    def boom():
        yield half_factory(seed=1)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_table(boom(), uri, source="unit")
    with pytest.raises(DataError, match="not a feature table"):
        read_manifest(uri)
    assert MANIFEST_NAME not in _keys(s3, uri)
    # and a failed overwrite keeps the committed table
    old = write_table([half_factory(seed=3)], uri, source="unit")
    with pytest.raises(RuntimeError):
        write_table(boom(), uri, source="unit", overwrite=True)
    assert read_manifest(uri).fingerprint == old.fingerprint
    assert len(read_halves(uri)) == 1


def test_missing_bucket(s3, half_factory):
    with pytest.raises(DataError, match="bucket"):
        write_table([half_factory()], "s3://no-such-bucket-avspot/t", source="unit")


def test_synth_to_s3_matches_local(s3, tmp_path):
    uri = s3.uri("synth")
    a = synthesize(uri, games=3, seed=5, half_minutes=0.5, endpoint=s3.endpoint)
    b = synthesize(str(tmp_path / "l"), games=3, seed=5, half_minutes=0.5)
    assert a.fingerprint == b.fingerprint
