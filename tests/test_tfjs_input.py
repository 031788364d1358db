from __future__ import annotations

import json

import pytest

from converter import tfjs_input
from converter.archive import extract
from converter.errors import ConversionError
from converter.formats import ARCHIVE, detect_file, detect_tree
from tests.uploads import zip_of


def test_zip_with_model_json_is_detected_as_a_tfjs_model(tmp_path):
    upload = tmp_path / "upload"
    upload.write_bytes(zip_of({"web_model/model.json": b"{}", "web_model/group1-shard1of1.bin": b"\0"}).read())
    assert detect_file(upload) == ARCHIVE
    extract(upload, tmp_path / "input")
    assert detect_tree(tmp_path / "input") == ("tfjs", tmp_path / "input" / "web_model")


def write_model(directory, manifest_paths, files=()):
    document = {"modelTopology": {"node": []}, "weightsManifest": [{"paths": manifest_paths, "weights": []}]}
    (directory / "model.json").write_text(json.dumps(document))
    for name in files:
        (directory / name).write_bytes(b"\0")


@pytest.mark.parametrize("path", ["../secret.bin", "a/../../secret.bin", "/etc/passwd"])
def test_weight_paths_outside_the_model_are_refused(tmp_path, path):
    write_model(tmp_path, [path])
    with pytest.raises(ConversionError, match="refers to a weight file outside the model"):
        tfjs_input.read_model_json(tmp_path)


def test_missing_weight_file_is_named(tmp_path):
    write_model(tmp_path, ["group1-shard1of1.bin"])
    with pytest.raises(ConversionError) as failure:
        tfjs_input.read_model_json(tmp_path)
    assert (
        str(failure.value) == "The weight file 'group1-shard1of1.bin' named in model.json is missing from the archive."
    )


def test_model_json_without_topology_is_not_a_model(tmp_path):
    (tmp_path / "model.json").write_text('{"hello": 1}')
    with pytest.raises(ConversionError, match="has no modelTopology"):
        tfjs_input.read_model_json(tmp_path)
