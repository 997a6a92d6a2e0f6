"""The reused copies of a layer's activations (``_Spare``): reused only when no one holds them."""

from __future__ import annotations

import torch

import convscope
from convscope.insitu._monitor import _Spare
from convscope.sinks.memory import MemorySink


def test_a_copy_is_reused_only_when_nothing_refers_to_it() -> None:
    spare = _Spare(keep=2, keep_bytes=0)
    a = torch.arange(12.0).reshape(3, 4)
    first = spare.copy(a)
    assert torch.equal(first, a) and first.data_ptr() != a.data_ptr()
    # held by the caller: a new copy
    second = spare.copy(a + 1)
    assert second.data_ptr() != first.data_ptr() and torch.equal(first, a)
    ptr = first.data_ptr()
    del first
    third = spare.copy(a * 2)  # the first copy is free again: its memory is reused
    assert third.data_ptr() == ptr and torch.equal(third, a * 2)
    # a view or a numpy array of its memory holds it as well
    row = third[1]
    arr = second.numpy()
    del third, second
    fourth = spare.copy(a - 1)
    assert fourth.data_ptr() not in (ptr, arr.ctypes.data)
    assert torch.equal(row, (a * 2)[1]) and (arr == (a + 1).numpy()).all()  # neither was overwritten


def test_another_shape_replaces_the_oldest_and_close_lets_them_go() -> None:
    spare = _Spare(keep=2, keep_bytes=0)
    for shape in ((2, 3), (2, 3), (4, 5)):
        spare.copy(torch.ones(shape))
    assert [tuple(t.shape) for t in spare.held] == [(2, 3), (4, 5)]
    free = spare.held[1].data_ptr()
    assert spare.copy(torch.zeros(4, 5)).data_ptr() == free
    # small copies: as many as 16 MiB of them are kept (a batch of recordings), at most 64
    many = _Spare()
    in_use = [many.copy(torch.ones(10)) for _ in range(80)]
    assert len(many.held) == 64 and many.held[-1] is in_use[-1]
    spare.clear()
    assert spare.held == []


def test_recordings_made_in_reused_copies_equal_fresh_ones(digits, lenet) -> None:
    # Every activation view with reuse against a run whose copies are never reused: equal frames.
    from test_monitor import _train

    payloads = []
    for keep in (3, 0):
        model = lenet()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        sink = MemorySink()
        mon = convscope.watch(
            model, optimizer=opt, logdir=None, sinks=[sink], every=2, budget=None,
            record=["distribution", "feature_maps", "correlation"], batch_window=0.0,
        )
        for state in mon.layers.values():
            state.spare = _Counted(keep=keep, keep_bytes=0) if keep else _NeverReused()
        with mon:
            _train(model, opt, digits, 20, monitor=mon)
        if keep:  # copies were reused (one at a time: no batch window), and close() let them go
            assert all(state.spare.reused >= 5 and not state.spare.held for state in mon.layers.values())
        frames = sorted(sink.frames, key=lambda f: (f.step, f.layer, f.kind))
        payloads.append([(f.step, f.layer, f.kind, f.payload) for f in frames if f.kind not in ("scalar", "scalars")])
    assert len(payloads[0]) == len(payloads[1]) > 0
    for (s1, l1, k1, p1), (s2, l2, k2, p2) in zip(*payloads, strict=True):
        assert (s1, l1, k1) == (s2, l2, k2)
        for key in p1:
            a, b = p1[key], p2[key]
            assert type(a) is type(b)
            if hasattr(a, "shape"):
                assert torch.equal(torch.as_tensor(a), torch.as_tensor(b)), (s1, l1, k1, key)
            else:
                assert a == b, (s1, l1, k1, key)


class _NeverReused(_Spare):
    def copy(self, src: torch.Tensor) -> torch.Tensor:
        return src.clone(memory_format=torch.contiguous_format)


class _Counted(_Spare):
    reused = 0

    def copy(self, src: torch.Tensor) -> torch.Tensor:
        ptrs = {t.data_ptr() for t in self.held}
        out = super().copy(src)
        self.reused += out.data_ptr() in ptrs
        return out
