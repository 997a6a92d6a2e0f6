"""A Lightning callback: ``Trainer(callbacks=[ConvscopeCallback(every=10)])``.

It starts :func:`convscope.watch` on the LightningModule when fitting starts, follows the
first optimizer's steps, records the training loss after every batch and the logged metrics
(``self.log(...)``) at the end of every epoch, and closes the run when fitting ends (marked
failed if it raised). Its steps are Lightning's global steps, also where fitting resumes from a
checkpoint; with ``resume=True`` and the run's name (``run=``) that fit goes on with the stored run.

Example:
    >>> from convscope.integrations.lightning import ConvscopeCallback
    >>> cb = ConvscopeCallback(every=10, logdir="convscope-runs")
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from convscope._optional import require

require("lightning", feature="the Lightning callback", extra="lightning")

import lightning.pytorch as pl  # noqa: E402

from convscope.insitu import Monitor  # noqa: E402

__all__ = ["ConvscopeCallback"]


class ConvscopeCallback(pl.Callback):
    """Watch a LightningModule while it trains; takes every option of :func:`convscope.watch`."""

    def __init__(self, **watch_options: Any) -> None:
        super().__init__()
        self.options = watch_options
        self.monitor: Monitor | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        options = dict(self.options)
        options.setdefault("config", {})
        options["config"] = {"trainer": "lightning", "max_epochs": trainer.max_epochs, **options["config"]}
        self.monitor = Monitor(pl_module, optimizer=optimizer, **options).start()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # fitting resumed from a checkpoint (``fit(ckpt_path=...)``) restores the global step after
        # on_fit_start: frames carry Lightning's own step numbers from there (unless start_step= says)
        if self.monitor is not None and "start_step" not in self.options and trainer.global_step:
            self.monitor._start_at(trainer.global_step)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.monitor is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is not None:
            self.monitor.log(loss=loss)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.monitor is None:
            return
        scalars = {}
        for key, value in trainer.callback_metrics.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number) and key != "loss":
                scalars[key.replace("/", "_")] = number
        if scalars:
            self.monitor.log(**scalars)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close("finished")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._close("failed")

    def _close(self, status: str) -> None:
        if self.monitor is not None:
            self.monitor.close(status=status)
