"""Model files are untrusted: no code runs without trust, and bad bytes give clean errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

import convscope
from convscope.errors import CorruptModelError, ModelLoadError, UnsupportedFormatError, UntrustedModelError

EXTENSIONS = [".pt", ".pth", ".bin", ".safetensors", ".pt2", ".onnx", ".keras", ".h5", ".hdf5"]


class _Payload:
    """Unpickling this creates a file: the proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("ext", [".pt", ".pth", ".bin"])
def test_pickled_code_is_refused_without_trust_and_runs_nothing(tmp_path: Path, ext: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{ext}"
    torch.save({"model": _Payload(str(marker))}, path)
    with pytest.raises(UntrustedModelError, match=r"trust=True.*") as info:
        convscope.load_model(path)
    assert "GLOBAL io.open" in str(info.value) or "GLOBAL builtins.open" in str(info.value)  # what it wanted to run
    assert not marker.exists()
    with pytest.raises(UntrustedModelError):
        convscope.load_model(path, architecture="lenet5-simplified")
    assert not marker.exists()


def test_a_whole_model_pickle_needs_trust(tmp_path: Path) -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 26 * 26, 10))
    torch.save(net, tmp_path / "whole.pt")
    with pytest.raises(UntrustedModelError, match="torch.nn"):
        convscope.load_model(tmp_path / "whole.pt", input_shape=(1, 28, 28))
    m = convscope.load_model(tmp_path / "whole.pt", trust=True, input_shape=(1, 28, 28))
    assert m.format == "pickle" and m.graph.layer("0").attributes["filters"] == 4
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(m.module(x), net(x))


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_keras_lambda_layers_are_refused_in_safe_mode(tmp_path: Path, ext: str, monkeypatch, keras_torch) -> None:
    keras = keras_torch
    marker = tmp_path / "ran"
    monkeypatch.setenv("CONVSCOPE_TEST_MARKER", str(marker))
    # leaves a mark whenever it runs; only builtins, so Keras can rebuild it from its bytecode
    double = lambda x: (open(__import__("os").environ["CONVSCOPE_TEST_MARKER"], "w").close(), x * 2)[1]  # noqa: E731
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(double, name="double"), keras.layers.Dense(2)])
    path = tmp_path / f"lambda{ext}"
    model.save(str(path))
    marker.unlink(missing_ok=True)  # building the model ran it once
    with pytest.raises(UntrustedModelError, match="trust=True"):
        convscope.load_model(path)
    assert not marker.exists()
    m = convscope.load_model(path, trust=True)  # the caller's decision: now it runs
    assert m.format == "keras" and marker.exists()


GARBAGE = {
    "empty": b"",
    "zeros": b"\x00" * 64,
    "zip header": b"PK\x03\x04garbage",
    "hdf5 signature": b"\x89HDF\r\n\x1a\nnot really",
    "pickle opcodes": b"\x80\x02garbage",
    "protobuf-ish": b"\x08\x07\x12\x04abcd",
    "text": b"hello world\n" * 10,
    "random": bytes(range(256)) * 16,
}


@pytest.mark.parametrize("ext", EXTENSIONS)
@pytest.mark.parametrize("blob", list(GARBAGE))
def test_garbage_bytes_give_a_corrupt_model_error(tmp_path: Path, ext: str, blob: str) -> None:
    path = tmp_path / f"bad{ext}"
    path.write_bytes(GARBAGE[blob])
    with pytest.raises(ModelLoadError) as info:
        convscope.load_model(path, architecture="lenet5-simplified", input_shape=(1, 28, 28))
    assert type(info.value) in (CorruptModelError, UnsupportedFormatError), repr(info.value)
    assert path.name in str(info.value)
    if blob == "empty":
        assert "empty (0 bytes)" in str(info.value)


@pytest.mark.parametrize("ext", [".pt", ".safetensors", ".pt2", ".onnx", ".keras", ".h5"])
@pytest.mark.parametrize("keep", [0.5, 64])
def test_truncated_real_files_give_a_corrupt_model_error(real_files, tmp_path: Path, ext: str, keep: float) -> None:
    original = real_files[ext]
    kwargs = {"architecture": "lenet5-simplified"} if ext in (".pt", ".safetensors") else {}
    assert convscope.load_model(original, **kwargs).graph.layer_ids(category="conv")  # the intact file loads
    data = original.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: int(len(data) * keep) if keep < 1 else int(keep)])
    with pytest.raises(CorruptModelError, match="cut"):
        convscope.load_model(cut, **kwargs)


def test_a_flipped_byte_in_a_keras_archive_fails_its_checksum(real_files, tmp_path: Path) -> None:
    data = bytearray(real_files[".keras"].read_bytes())
    with zipfile.ZipFile(real_files[".keras"]) as archive:
        info = archive.getinfo("model.weights.h5")
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2] ^= 0xFF
    path = tmp_path / "flipped.keras"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptModelError, match="checksum"):
        convscope.load_model(path)


def _archive(path: Path, members: dict[str, bytes], *, compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_keras_archives_are_checked_before_keras_reads_them(real_files, tmp_path: Path, monkeypatch) -> None:
    import convscope.models._keras as keras_loader

    with pytest.raises(CorruptModelError, match="config.json"):
        convscope.load_model(_archive(tmp_path / "weights_only.keras", {"model.weights.h5": b"x"}))
    with pytest.raises(CorruptModelError, match="unsafe path"):
        convscope.load_model(_archive(tmp_path / "slip.keras", {"config.json": b"{}", "../../evil.sh": b"x"}))
    bomb = _archive(tmp_path / "bomb.keras", {"config.json": b"{}", "model.weights.h5": bytes(80 << 20)},
                    compression=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(CorruptModelError, match="decompression bomb"):
        convscope.load_model(bomb)
    with zipfile.ZipFile(real_files[".keras"]) as archive:
        members = len(archive.infolist())
        unpacked = sum(i.file_size for i in archive.infolist())
    monkeypatch.setattr(keras_loader, "MAX_ARCHIVE_MEMBERS", members - 1)
    with pytest.raises(CorruptModelError, match=f"{members} archive members"):
        convscope.load_model(real_files[".keras"])
    monkeypatch.setattr(keras_loader, "MAX_ARCHIVE_MEMBERS", members)
    monkeypatch.setattr(keras_loader, "MAX_ARCHIVE_BYTES", unpacked - 1)
    with pytest.raises(CorruptModelError, match="unpacks to"):
        convscope.load_model(real_files[".keras"])
    monkeypatch.setattr(keras_loader, "MAX_ARCHIVE_BYTES", unpacked)
    assert convscope.load_model(real_files[".keras"]).format == "keras"  # exactly at the limits: fine


def test_h5_files_must_be_self_contained_hdf5(tmp_path: Path) -> None:
    import h5py

    (tmp_path / "zip.h5").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip archive
    with pytest.raises(CorruptModelError, match="not an HDF5 file"):
        convscope.load_model(tmp_path / "zip.h5")
    with h5py.File(tmp_path / "link.h5", "w") as f:
        f["model_weights"] = h5py.ExternalLink("other.h5", "/data")
    with pytest.raises(CorruptModelError, match="links to another file"):
        convscope.load_model(tmp_path / "link.h5")
    (tmp_path / "raw.bin").write_bytes(bytes(40))
    with h5py.File(tmp_path / "external.h5", "w") as f:
        f.create_dataset("w", shape=(10,), dtype="f4", external=[(str(tmp_path / "raw.bin"), 0, 40)])
    with pytest.raises(CorruptModelError, match="other files"):
        convscope.load_model(tmp_path / "external.h5")
    with h5py.File(tmp_path / "shape_bomb.h5", "w") as f:
        f.create_dataset("w", shape=(1 << 16, 1 << 12), dtype="f4", chunks=(256, 256), compression="gzip")
    with pytest.raises(CorruptModelError, match="declares"):
        convscope.load_model(tmp_path / "shape_bomb.h5")


def test_onnx_external_data_must_sit_beside_the_model(real_files, tmp_path: Path) -> None:
    import onnx

    folder = tmp_path / "model"
    folder.mkdir()
    proto = onnx.load(str(real_files[".onnx"]))
    onnx.save(proto, str(folder / "m.onnx"), save_as_external_data=True, location="m.data", size_threshold=0)
    beside = convscope.load_model(folder / "m.onnx")
    assert beside.graph.layer("conv1").attributes["filters"] == 16  # external data beside the model: fine

    (tmp_path / "secret.data").write_bytes((folder / "m.data").read_bytes())
    escaped = onnx.load(str(folder / "m.onnx"), load_external_data=False)
    for tensor in escaped.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../secret.data"
    onnx.save(escaped, str(folder / "escape.onnx"))
    with pytest.raises(CorruptModelError, match="outside its folder"):
        convscope.load_model(folder / "escape.onnx")
    (folder / "m.data").unlink()
    with pytest.raises(CorruptModelError, match="missing"):
        convscope.load_model(folder / "m.onnx")


def test_missing_files_folders_and_unknown_extensions(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        convscope.load_model(tmp_path / "nope.pt")
    with pytest.raises(UnsupportedFormatError, match="folder"):
        convscope.load_model(tmp_path)
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(UnsupportedFormatError, match="folder"):
        convscope.load_model(tmp_path / "dir.onnx")
    (tmp_path / "m.txt").write_text("hi")
    with pytest.raises(UnsupportedFormatError, match="extension"):
        convscope.load_model(tmp_path / "m.txt")
    with pytest.raises(UnsupportedFormatError, match="torch.nn.Module"):
        convscope.load_model(42)


def test_state_dict_with_wrong_keys_names_them(tmp_path: Path) -> None:
    from convscope.errors import StateDictMismatchError

    net = convscope.load_model("lenet5-simplified", pretrained=False).module
    state = net.state_dict()
    state["extra.weight"] = torch.zeros(3)
    del state["fc2.bias"]
    state["conv1.weight"] = torch.zeros(8, 1, 3, 3)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(StateDictMismatchError) as info:
        convscope.load_model(tmp_path / "w.pt", architecture="lenet5-simplified")
    text = str(info.value)
    assert "fc2.bias" in text and "extra.weight" in text and "conv1.weight" in text


def test_a_state_dict_saved_from_a_ddp_or_compiled_model_loads(tmp_path: Path) -> None:
    """Saved from DistributedDataParallel (or DataParallel) every key starts with "module.", from a
    torch.compile'd model with "_orig_mod.": the weights are the architecture's all the same."""
    net = convscope.load_model("lenet5-simplified", pretrained=False).module
    x = torch.rand(2, 1, 28, 28)
    for prefix in ("module.", "_orig_mod."):
        torch.save({prefix + k: v for k, v in net.state_dict().items()}, tmp_path / "w.pt")
        loaded = convscope.load_model(tmp_path / "w.pt", architecture="lenet5-simplified")
        torch.testing.assert_close(loaded.module(x), net.eval()(x))
    # a prefix on some keys only is no wrapper's: still named as it is
    from convscope.errors import StateDictMismatchError

    state = net.state_dict()
    state["module.fc2.bias"] = state.pop("fc2.bias")
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(StateDictMismatchError, match="module.fc2.bias"):
        convscope.load_model(tmp_path / "w.pt", architecture="lenet5-simplified")
