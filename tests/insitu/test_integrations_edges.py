"""The Lightning and Keras callbacks where training is less plain: accumulated gradients, several
optimizers, nested Keras models, validation, layers convscope cannot watch."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

from convscope.sinks.memory import MemorySink


def _scalars(sink: MemorySink, name: str) -> tuple[list[int], list[float]]:
    steps: list[int] = []
    values: list[float] = []
    for frame in sink.select(kind="scalars"):
        if frame.payload["name"] == name:
            steps += frame.payload["steps"].tolist()
            values += frame.payload["values"].tolist()
    return steps, values


def _trainer(callback, **options):
    import lightning.pytorch as pl

    settings = dict(
        max_epochs=1, callbacks=[callback], logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", devices=1,
    )
    return pl.Trainer(**(settings | options))


def _lightning_module(lenet, *, gan: bool = False):
    import lightning.pytorch as pl

    class Classifier(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = lenet()
            self.losses: list[float] = []

        def training_step(self, batch, _idx):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.losses.append(loss.item())
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    class TwoOptimizers(Classifier):
        """A GAN-like module: the classifier and a critic of its inputs, each with its optimizer."""

        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            torch.manual_seed(1)
            self.critic = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 26 * 26, 1))

        def training_step(self, batch, _idx):
            net_opt, critic_opt = self.optimizers()
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            net_opt.zero_grad()
            self.manual_backward(loss)
            net_opt.step()
            critic_opt.zero_grad()
            self.manual_backward(torch.nn.functional.softplus(self.critic(x)).mean())
            critic_opt.step()
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.net.parameters(), lr=0.05), torch.optim.SGD(self.critic.parameters(), lr=0.01)

    return TwoOptimizers() if gan else Classifier()


@pytest.mark.slow
def test_lightning_logs_one_loss_per_step_of_accumulated_gradients(digits, lenet) -> None:
    # Lightning hands on_train_batch_end each batch's share of the accumulated loss (divided by
    # accumulate_grad_batches), batches before the step included: one mean loss per step it is
    images, labels = digits
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images[:256], labels[:256]), batch_size=32)
    sink = MemorySink()
    callback = _callback(every=1, budget=None, logdir=None, sinks=[sink])
    module = _lightning_module(lenet)
    _trainer(callback, accumulate_grad_batches=4).fit(module, loader)
    assert callback.monitor.step_count == 2
    steps, values = _scalars(sink, "loss")
    assert steps == [1, 2]
    np.testing.assert_allclose(values, np.asarray(module.losses).reshape(2, 4).mean(1), rtol=1e-5)
    assert [f.step for f in sink.select(kind="weight_grid", layer="net.conv1")] == [1, 2]


def _callback(**options):
    from convscope.integrations.lightning import ConvscopeCallback

    return ConvscopeCallback(**options)


@pytest.mark.slow
def test_lightning_follows_the_optimizer_that_trains_the_watched_layers(digits, lenet) -> None:
    images, labels = digits
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images[:128], labels[:128]), batch_size=32)
    sink = MemorySink()
    callback = _callback(layers=["critic.0"], every=2, budget=None, logdir=None, sinks=[sink])
    module = _lightning_module(lenet, gan=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="convscope", category=RuntimeWarning)
        _trainer(callback).fit(module, loader)
    assert callback.monitor.optimizer is module.optimizers()[1].optimizer
    assert _scalars(sink, "lr")[1] == [0.01, 0.01]  # the critic's learning rate
    ratios = [f.payload["update_ratio"] for f in sink.select(kind="gradient_health", layer="critic.0")]
    assert len(ratios) == 2 and min(ratios) > 0  # its weights before its own update


@pytest.mark.slow
def test_lightning_steps_of_one_of_two_optimizers_go_on_from_a_checkpoint(digits, lenet, tmp_path) -> None:
    # Lightning's global step counts both optimizers' steps (16 after 8 batches); the callback
    # keeps its own count in the checkpoint, and the resumed run goes on from it
    from convscope.store import RunStore

    images, labels = digits
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images[:256], labels[:256]), batch_size=32)
    watched = ["net.conv1", "net.conv2"]  # (those of the first optimizer)
    callback = _callback(layers=watched, every=4, budget=None, logdir=tmp_path / "runs", run="gan")
    trainer = _trainer(callback, default_root_dir=tmp_path)
    trainer.fit(_lightning_module(lenet, gan=True), loader)
    assert trainer.global_step == 16 and callback.monitor.step_count == 8
    trainer.save_checkpoint(tmp_path / "epoch1.ckpt")
    again = _callback(layers=watched, every=4, budget=None, logdir=tmp_path / "runs", run="gan", resume=True)
    _trainer(again, max_epochs=2, default_root_dir=tmp_path).fit(_lightning_module(lenet, gan=True), loader, ckpt_path=tmp_path / "epoch1.ckpt")
    assert again.monitor.step_count == 16
    with RunStore(tmp_path / "runs").open_run("gan") as run:
        assert run.steps(kind="weight_grid", layer="net.conv1") == [4, 8, 12, 16]


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    if keras.backend.backend() != "torch":
        pytest.skip("keras was imported with another backend in this process")
    return keras


def _keras_data(digits, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    images, labels = digits
    return images[:n].permute(0, 2, 3, 1).numpy(), labels[:n].numpy()


def _compiled(keras, model):
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


@pytest.mark.slow
def test_keras_layers_of_one_name_in_nested_models_are_watched_by_their_paths(digits) -> None:
    keras = _keras()
    from convscope.integrations.keras import ConvscopeCallback

    keras.utils.set_random_seed(0)
    first = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, name="conv")], name="block")
    second = keras.Sequential([keras.Input((26, 26, 4)), keras.layers.Conv2D(6, 3, name="conv")], name="block2")
    inputs = keras.Input((28, 28, 1))
    top = keras.layers.Conv2D(3, 3, name="top")(second(first(inputs)))
    model = _compiled(keras, keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(top))))
    x, y = _keras_data(digits)
    sink = MemorySink()
    callback = ConvscopeCallback(every=2, budget=None, logdir=None, sinks=[sink])
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[callback])
    assert set(callback.monitor.layers) == {"block/conv", "block2/conv", "top"}
    assert sink.select(kind="weight_grid", layer="block2/conv")[-1].payload["weights"].shape == (6, 4, 3, 3)
    # a nested layer named by its path, also where its name alone would do
    only = MemorySink()
    model.fit(x, y, batch_size=32, epochs=1, verbose=0,
              callbacks=[ConvscopeCallback(layers=["block/conv", "top"], every=2, budget=None, logdir=None, sinks=[only])])
    assert {f.layer for f in only.select(kind="weight_grid")} == {"block/conv", "top"}


@pytest.mark.slow
def test_keras_validation_loss_and_metrics_reach_the_scalars(digits) -> None:
    keras = _keras()
    from convscope.integrations.keras import ConvscopeCallback

    keras.utils.set_random_seed(0)
    model = _compiled(keras, keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, name="c1"), keras.layers.Flatten(), keras.layers.Dense(10),
    ]))
    x, y = _keras_data(digits, 128)
    sink = MemorySink()
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, validation_data=(x[:32], y[:32]), shuffle=False,
                        callbacks=[ConvscopeCallback(every=2, budget=None, logdir=None, sinks=[sink])])
    for name in ("val_loss", "val_accuracy"):
        steps, values = _scalars(sink, name)
        assert steps == [4, 8]
        np.testing.assert_allclose(values, history.history[name], rtol=1e-5)
    assert _scalars(sink, "loss")[0] == list(range(1, 9))


@pytest.mark.slow
def test_keras_separable_convs_are_said_not_watched(digits) -> None:
    keras = _keras()
    from convscope.errors import DataError
    from convscope.integrations.keras import ConvscopeCallback

    keras.utils.set_random_seed(0)
    model = _compiled(keras, keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.SeparableConv2D(4, 3, name="sep"), keras.layers.Conv2D(4, 3, name="c2"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10),
    ]))
    x, y = _keras_data(digits)
    callback = ConvscopeCallback(every=2, budget=None, logdir=None, sinks=[MemorySink()])
    with warnings.catch_warnings(record=True) as said:  # (not pytest.warns: it says Keras's own deprecations again)
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[callback])
    assert any("does not watch sep: a separable conv" in str(w.message) for w in said if w.category is RuntimeWarning)
    assert list(callback.monitor.layers) == ["c2"]
    with pytest.raises(DataError, match=r"\['sep'\] are separable convs"):
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[ConvscopeCallback(layers="sep", logdir=None)])


@pytest.mark.slow
def test_keras_conv1d_and_depthwise_kernels_are_read_filters_first(digits) -> None:
    """A Conv1D's (k, in, out) kernel and channels-last (N, L, C) maps, and a DepthwiseConv2D's
    (kh, kw, in, multiplier) kernel, as torch's layouts: one filter per output channel in the
    weight grid as in the maps (the Conv1D's maps were read as one "filter" per position, the
    depthwise grid had `multiplier` filters for in x multiplier maps)."""
    keras = _keras()
    from convscope.integrations.keras import ConvscopeCallback

    keras.utils.set_random_seed(0)
    images, labels = _keras_data(digits)
    rows = images[..., 0]  # (N, 28, 28): each image a sequence of 28 rows of 28 values
    cases = [
        (keras.Sequential([keras.Input((28, 28)), keras.layers.Conv1D(5, 3, name="c"), keras.layers.GlobalAveragePooling1D(),
                           keras.layers.Dense(10)]), rows, 5),
        (keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(3, 3, name="pre"),
                           keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="c"), keras.layers.GlobalAveragePooling2D(),
                           keras.layers.Dense(10)]), images, 6),
    ]
    for model, x, maps in cases:
        sink = MemorySink()
        callback = ConvscopeCallback(every=2, budget=None, logdir=None, sinks=[sink], layers="c")
        _compiled(keras, model).fit(x, labels, batch_size=32, epochs=1, verbose=0, callbacks=[callback])
        grid = sink.select(kind="weight_grid", layer="c")[-1].payload["weights"]
        assert grid.shape[0] == maps
        assert sink.select(kind="distribution", layer="c")[-1].payload["counts"].shape[0] == maps
        assert sink.select(kind="correlation", layer="c")[-1].payload["matrix"].shape == (maps, maps)
        kernel = np.asarray(model.get_layer("c").kernel.numpy())
        if kernel.ndim == 4:  # depthwise: filter i * multiplier + m is input i's m-th kernel
            for i in range(3):
                for m in range(2):
                    np.testing.assert_allclose(grid[i * 2 + m].reshape(3, 3), kernel[:, :, i, m], rtol=1e-6)
        else:  # Conv1D: filter f's weights on input channel c over the kernel's width
            np.testing.assert_allclose(grid.reshape(5, 28, 3), kernel.transpose(2, 1, 0), rtol=1e-6)


@pytest.mark.slow
def test_lightning_gradient_health_sees_the_gradients_before_clipping(digits, lenet) -> None:
    """gradient_clip_val clips between the backward pass and the step: the health view judges the
    gradients the model made (read in on_before_optimizer_step), not the clipped ones."""
    images, labels = digits
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images[:128], labels[:128]), batch_size=32)
    clip = 1e-3
    norms = {}
    for clipping in (None, clip):
        torch.manual_seed(0)
        sink = MemorySink()
        callback = _callback(every=2, budget=None, logdir=None, sinks=[sink], record=["gradients"])
        _trainer(callback, gradient_clip_val=clipping).fit(_lightning_module(lenet), loader)
        norms[clipping] = [f.payload["grad_norm"] for f in sink.select(kind="gradient_health", layer="net.conv1")]
    # about the unclipped run's (only one clipped step before the first recording, at step 2),
    # and far above the clipped norm of the whole model (which conv1's was, read after the step)
    assert len(norms[clip]) == 2 and norms[clip][0] == pytest.approx(norms[None][0], rel=0.1)
    assert min(norms[clip]) > 10 * clip
