"""Hostile uploads, each built the way the attack that once worked on
Modelport built it (../shared/REFERENCE.md, "Attacks that worked")."""

from __future__ import annotations

import bz2
import json
import tarfile
import zipfile
from pathlib import Path

from tests.zoo import zip_directory


def saved_model_with_io_initializer(directory: Path, canary: Path, marker: Path) -> Path:
    """A SavedModel whose resource initializer reads a file and writes
    another: ``tf.saved_model.load`` runs it before any op check could."""
    import tensorflow as tf

    class Exfiltrate(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self):
            return tf.raw_ops.VarHandleOp(dtype=tf.string, shape=[], shared_name="exfiltrate")

        def _initialize(self):
            stolen = tf.io.read_file(str(canary))
            tf.io.write_file(str(marker), stolen)
            return tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=stolen)

    class Scorer(tf.Module):
        def __init__(self):
            super().__init__()
            self.resource = Exfiltrate()
            self.weight = tf.Variable([[2.0]])

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.matmul(x, self.weight)}

    module = Scorer()
    export = directory / "exfiltrate"
    tf.saved_model.save(module, str(export), signatures=module.__call__)
    target = directory / "exfiltrate.zip"
    zip_directory(export, target)
    return target


def h5_with_residual_fn(directory: Path, marker: Path) -> Path:
    """A tf-keras RNN whose cell is a ResidualWrapper carrying a lambda
    (marshalled bytecode in the config); every class is built in."""
    import tf_keras
    from tf_keras.src.layers.rnn.cell_wrappers import ResidualWrapper

    residual_fn = eval(f"lambda inputs, outputs: (open({str(marker)!r}, 'w').write('pwned'), outputs)[1]")
    cell = ResidualWrapper(tf_keras.layers.SimpleRNNCell(4), residual_fn=residual_fn)
    model = tf_keras.Sequential([tf_keras.Input((3, 4)), tf_keras.layers.RNN(cell, name="rnn")])
    path = directory / "residual.h5"
    model.save(path)
    marker.unlink(missing_ok=True)  # building the model here ran the lambda once, in the test
    return path


def h5_with_external_embedding(directory: Path, sources: list[Path]) -> Path:
    """A tf-keras Embedding model whose weights dataset is an HDF5 external
    dataset reading ``sources`` (each at least 256 bytes)."""
    import h5py
    import tf_keras

    model = tf_keras.Sequential([tf_keras.Input((2,), dtype="int32"), tf_keras.layers.Embedding(16, 8, name="emb")])
    path = directory / "external.h5"
    model.save(path)
    with h5py.File(path, "r+") as h5:
        group = h5["model_weights/emb/emb"]
        name = next(iter(group))
        shape, dtype = group[name].shape, group[name].dtype
        del group[name]
        share = shape[0] * shape[1] * dtype.itemsize // len(sources)
        group.create_dataset(name, shape, dtype=dtype, external=[(str(s), 0, share) for s in sources])
    return path


def tar_bz2_declaring(directory: Path, size: int) -> Path:
    """A few KB of .tar.bz2 whose first member claims ``size`` bytes."""
    info = tarfile.TarInfo("model/saved_model.pb")
    info.size = size
    path = directory / "bomb.tar.bz2"
    path.write_bytes(bz2.compress(info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 10 * 1024 * 1024))
    return path


def zip_with_file_directory_clash(directory: Path) -> Path:
    path = directory / "clash.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("m/saved_model.pb", b"pb")
        archive.writestr("m/variables", b"a file")
        archive.writestr("m/variables/variables.index", b"index")
    return path


def keras3_with_function_object(directory: Path) -> Path:
    """A Keras 3 .keras whose config names ``pickle.loads`` as a function."""
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")])
    path = directory / "function.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    dense = next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == "dense")
    dense["config"]["kernel_regularizer"] = {"module": "pickle", "class_name": "function", "config": "loads"}
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path
