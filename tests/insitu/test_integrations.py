"""The Lightning and Keras callbacks record the same views as convscope.watch, in a few lines."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from convscope.sinks.memory import MemorySink


@pytest.mark.slow
def test_lightning_callback(digits) -> None:
    import lightning.pytorch as pl

    from convscope.integrations.lightning import ConvscopeCallback
    from convscope.models.zoo import load_zoo_model

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = load_zoo_model("lenet5-simplified", pretrained=False).module.train()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _idx):
            x, y = batch
            logits = self(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            self.log("train_acc", (logits.argmax(1) == y).float().mean(), on_epoch=True, on_step=False)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    images, labels = digits
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images[:256], labels[:256]), batch_size=32)
    sink = MemorySink()
    callback = ConvscopeCallback(every=4, budget=None, logdir=None, sinks=[sink])
    trainer = pl.Trainer(
        max_epochs=2, callbacks=[callback], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
    )
    module = Module()
    trainer.fit(module, loader)
    assert callback.monitor is not None and callback.monitor.step_count == 16
    assert set(callback.monitor.layers) == {"net.conv1", "net.conv2"}
    grids = sink.select(kind="weight_grid", layer="net.conv1")
    assert [f.step for f in grids] == [4, 8, 12, 16]
    np.testing.assert_allclose(grids[-1].payload["weights"], module.net.conv1.weight.detach().numpy(), rtol=1e-6)
    assert len(sink.select(kind="scalar", name="loss")) == 16
    assert [f.step for f in sink.select(kind="scalar", name="train_acc")] == [8, 16]
    assert sink.select(kind="correlation", layer="net.conv2")
    assert sink.closed_with == "finished"


@pytest.mark.slow
def test_keras_callback_on_the_torch_backend(digits) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend in this process")
    from convscope.integrations.keras import ConvscopeCallback

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="c1"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(12, 3, activation="relu", name="c2"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, name="out"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images, labels = digits
    x = images[:128].permute(0, 2, 3, 1).numpy()
    y = labels[:128].numpy()
    sink = MemorySink()
    callback = ConvscopeCallback(every=2, budget=None, logdir=None, sinks=[sink])
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[callback], shuffle=False)
    assert callback.monitor.step_count == 8
    grids = sink.select(kind="weight_grid", layer="c1")
    assert [f.step for f in grids] == [2, 4, 6, 8]
    kernel = keras.ops.convert_to_numpy(model.get_layer("c1").kernel)  # (kh, kw, in, out)
    np.testing.assert_allclose(grids[-1].payload["weights"], kernel.transpose(3, 2, 0, 1), rtol=1e-6)
    # feature maps arrive channels-first: correlation over the 8 filters of c1
    corr = sink.select(kind="correlation", layer="c1")
    assert corr and corr[-1].payload["matrix"].shape == (8, 8)
    health = sink.select(kind="gradient_health", layer="c2")
    assert health and health[-1].payload["grad_norm"] > 0
    assert sink.select(kind="scalar", name="loss")
    # one layer and one view, each named by itself (not read as one-letter names)
    only = MemorySink()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False,
              callbacks=[ConvscopeCallback(layers="c2", record="weights", every=2, budget=None, logdir=None, sinks=[only])])
    views = {(f.kind, f.layer) for f in only.frames if f.layer}
    assert views == {("weight_grid", "c2")}


@pytest.mark.slow
def test_lightning_fit_resumed_from_a_checkpoint_goes_on_with_its_run(digits, tmp_path) -> None:
    import lightning.pytorch as pl

    from convscope.integrations.lightning import ConvscopeCallback
    from convscope.models.zoo import load_zoo_model
    from convscope.store import RunStore

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = load_zoo_model("lenet5-simplified", pretrained=False).module.train()

        def training_step(self, batch, _idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    images, labels = digits
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images[:256], labels[:256]), batch_size=32)

    def fit(epochs: int, ckpt: str | None, **options) -> ConvscopeCallback:
        callback = ConvscopeCallback(every=4, budget=None, logdir=tmp_path / "runs", **options)
        trainer = pl.Trainer(
            max_epochs=epochs, callbacks=[callback], logger=False, enable_checkpointing=False, default_root_dir=tmp_path,
            enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1,
        )
        trainer.fit(Module(), loader, ckpt_path=ckpt)
        if ckpt is None:
            trainer.save_checkpoint(tmp_path / "epoch1.ckpt")
        return callback

    fit(1, None, run="pl")  # 8 steps, then the job stops
    again = fit(2, str(tmp_path / "epoch1.ckpt"), run="pl", resume=True)
    assert again.monitor.run_id == "pl" and again.monitor.step_count == 16
    other = fit(2, str(tmp_path / "epoch1.ckpt"), run="pl")  # without resume: a run of its own, at Lightning's steps
    assert other.monitor.run_id == "pl-2"
    store = RunStore(tmp_path / "runs")
    with store.open_run("pl") as r:
        assert r.steps(kind="weight_grid", layer="net.conv1") == [4, 8, 12, 16]
        # one trajectory path over both fits (the first kept its tracker at the end of its fit)
        assert r.frames(kind="trajectory", layer="net.conv1")[-1].payload["path_steps"].tolist() == [4, 8, 12, 16]
        assert r.status() == "finished" and len(r.meta()["resumed"]) == 1
    with store.open_run("pl-2") as r:
        assert r.steps(kind="weight_grid", layer="net.conv1") == [12, 16]


@pytest.mark.slow
def test_keras_fit_of_a_saved_model_goes_on_counting_and_with_its_run(digits, tmp_path) -> None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend in this process")
    from convscope.integrations.keras import ConvscopeCallback
    from convscope.store import RunStore

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3, activation="relu", name="c1"),
        keras.layers.Flatten(), keras.layers.Dense(10, name="out"),
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images, labels = digits
    x, y = images[:128].permute(0, 2, 3, 1).numpy(), labels[:128].numpy()
    logdir = tmp_path / "runs"
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False, callbacks=[ConvscopeCallback(every=2, budget=None, logdir=logdir, run="k")])
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")  # the job restarts from its saved model
    callback = ConvscopeCallback(every=2, budget=None, logdir=logdir, run="k", resume=True)
    again.fit(x, y, batch_size=32, epochs=2, initial_epoch=1, verbose=0, shuffle=False, callbacks=[callback])
    assert callback.monitor.run_id == "k" and callback.monitor.step_count == 8
    with RunStore(logdir).open_run("k") as r:
        assert r.steps(kind="weight_grid", layer="c1") == [2, 4, 6, 8]
    # a run of its own for the loaded model counts on from its optimizer's iterations too
    third = keras.models.load_model(tmp_path / "m.keras")
    third.fit(x, y, batch_size=32, epochs=2, initial_epoch=1, verbose=0, shuffle=False,
              callbacks=[ConvscopeCallback(every=2, budget=None, logdir=logdir, run="k-other")])
    with RunStore(logdir).open_run("k-other") as r:
        assert r.steps(kind="weight_grid", layer="c1") == [6, 8]


@pytest.mark.slow
def test_a_keras_fit_that_raises_in_a_notebook_cell_ends_its_run_as_failed(tmp_path) -> None:
    # Keras calls no callback when fit() raises; in IPython the run ends as failed once the cell
    # has ended, with its recordings up to the error, and the layers' hooks come off. A fresh
    # interpreter: the shell and the Keras backend are the process's own.
    pytest.importorskip("IPython")
    from convscope.store import RunStore

    cells = [
        "import numpy as np, keras\n"
        "from convscope.integrations.keras import ConvscopeCallback\n"
        "keras.utils.set_random_seed(0)\n"
        "model = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(4, 3, name='c1'), keras.layers.Flatten(), keras.layers.Dense(3)])\n"
        "model.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))\n"
        "x, y = np.random.rand(64, 12, 12, 1).astype('float32'), np.random.randint(0, 3, 64)\n"
        "class Breaks(keras.callbacks.Callback):\n"
        "    def on_train_batch_end(self, batch, logs=None):\n"
        "        if batch == 5:\n"
        "            raise RuntimeError('a bad batch')\n"
        "cb = ConvscopeCallback(every=2, budget=None, logdir='runs', run='k', batch_window=60)\n",
        "model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[cb, Breaks()])",
        "print(cb.monitor._closed, len(model.get_layer('c1')._forward_hooks), flush=True)",
    ]
    code = (
        "import os, sys\n"
        "os.environ['KERAS_BACKEND'] = 'torch'\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        f"results = [shell.run_cell(cell) for cell in {cells!r}]\n"
        "print([r.error_in_exec is not None for r in results], flush=True)\n"
        "os._exit(0)  # (no exit handlers: the cell's end alone must have ended the run)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-3:-1] == ["True 0", "[False, True, False]"], out.stdout
    with RunStore(tmp_path / "runs").open_run("k") as run:
        assert run.status() == "failed"
        assert run.steps(kind="weight_grid", layer="c1") == [2, 4, 6]  # (the sixth batch raised after its step)
