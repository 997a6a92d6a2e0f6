"""A Lightning callback: ``Trainer(callbacks=[ConvscopeCallback(every=10)])``.

It starts :func:`convscope.watch` on the LightningModule when fitting starts, follows the
steps of the optimizer that trains the watched layers (the first of ``configure_optimizers``'s
that trains most of them), records the training loss once per optimizer step (the mean over the
batches it accumulated) and the logged metrics (``self.log(...)``) at the end of every epoch,
and closes the run when fitting ends (marked failed if it raised). Its steps are that
optimizer's steps, which are Lightning's global steps unless several optimizers step in manual
optimization, also where fitting resumes from a checkpoint (the callback keeps its step there);
with ``resume=True`` and the run's name (``run=``) that fit goes on with the stored run.

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
import torch  # noqa: E402

from convscope.insitu import Monitor  # noqa: E402
from convscope.insitu._monitor import check_options, watched_modules  # noqa: E402

__all__ = ["ConvscopeCallback"]


def _followed_optimizer(optimizers: list[Any], module: torch.nn.Module, layers: Any) -> Any:
    """Of ``optimizers``, the first that trains most of the watched ``layers`` (as ``watch()``
    takes them); the first one if none trains them."""
    if len(optimizers) < 2:
        return optimizers[0] if optimizers else None
    watched = watched_modules(module, layers).values()
    weights = {id(w) for w in (getattr(m, "weight", None) for m in watched) if w is not None}

    def trained(optimizer: Any) -> int:
        return sum(id(p) in weights for group in optimizer.param_groups for p in group["params"])

    return max(optimizers, key=trained)  # (the first of those that train most)


class ConvscopeCallback(pl.Callback):
    """Watch a LightningModule while it trains; takes every option of :func:`convscope.watch` but
    ``optimizer`` (the optimizer followed is the trainer's), checked here rather than at ``fit()``."""

    def __init__(self, **watch_options: Any) -> None:
        super().__init__()
        check_options(
            watch_options, "ConvscopeCallback()",
            set_by={"optimizer": "it follows the optimizer of configure_optimizers() that trains the watched layers"}, values=True,
        )
        self.options = watch_options
        self.monitor: Monitor | None = None
        self._trainer: pl.Trainer | None = None
        #: (Lightning's global step, the monitor's step) where the last fit stopped, or as a
        #: checkpoint being resumed from says (see on_train_start)
        self._stopped: tuple[int, int] | None = None
        self._loss: Any = None  # the losses of the batches since the last optimizer step: their sum
        self._losses = 0  # and their count
        self._loss_step = 0  # the step they were logged at last

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        optimizer = _followed_optimizer(trainer.optimizers, pl_module, self.options.get("layers"))
        options = dict(self.options)
        options.setdefault("config", {})
        options["config"] = {"trainer": "lightning", "max_epochs": trainer.max_epochs, **options["config"]}
        self._trainer = trainer
        self.monitor = Monitor(pl_module, optimizer=optimizer, **options).start()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # fitting resumed from a checkpoint (``fit(ckpt_path=...)``) restores the global step after
        # on_fit_start: frames carry the steps from there (unless start_step= says). The followed
        # optimizer's steps are the global steps, but where several optimizers step (manual
        # optimization) the global step counts them all: this callback's own count is taken
        # where it stopped at that global step (in this process or in the checkpoint).
        if self.monitor is not None and "start_step" not in self.options and trainer.global_step:
            stopped = self._stopped
            self.monitor._start_at(stopped[1] if stopped is not None and stopped[0] == trainer.global_step else trainer.global_step)
        self._loss, self._losses = None, 0
        self._loss_step = 0 if self.monitor is None else self.monitor.step_count

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        # the gradients as the backward pass made them (unscaled under AMP), before Lightning
        # clips them (gradient_clip_val): gradient health judges those
        if self.monitor is not None and getattr(optimizer, "_optimizer", optimizer) is self.monitor.optimizer:
            self.monitor._take_gradients()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        monitor = self.monitor
        if monitor is None or not monitor.active:
            return
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is not None:
            if hasattr(loss, "detach"):
                loss = loss.detach()
            if pl_module.automatic_optimization and trainer.accumulate_grad_batches > 1:
                loss = loss * trainer.accumulate_grad_batches  # (Lightning hands on its share of the accumulated loss)
            self._loss = loss if self._loss is None else self._loss + loss
            self._losses += 1
        # one value per optimizer step, at its step: the mean over the batches it accumulated
        if monitor.step_count != self._loss_step:
            if self._loss is not None:
                monitor.log(loss=self._loss if self._losses == 1 else self._loss / self._losses)
            self._loss, self._losses, self._loss_step = None, 0, monitor.step_count

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

    def state_dict(self) -> dict[str, Any]:
        stopped = self._where()
        return {} if stopped is None else {"global_step": stopped[0], "step": stopped[1]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "global_step" in state_dict and "step" in state_dict:
            self._stopped = (int(state_dict["global_step"]), int(state_dict["step"]))

    def _where(self) -> tuple[int, int] | None:
        """(Lightning's global step, the monitor's step) now, while fitting; else where it stopped."""
        if self.monitor is not None and self._trainer is not None and not self.monitor._closed:
            return self._trainer.global_step, self.monitor.step_count
        return self._stopped

    def _close(self, status: str) -> None:
        if self.monitor is not None:
            self._stopped = self._where()
            self.monitor.close(status=status)
