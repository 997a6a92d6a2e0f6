"""The model explorer (NeuralVis): instance-based views of a trained model.

An :class:`ExplorerSession` holds models (any format :func:`convscope.load_model` opens) and
inputs (bundled samples, uploaded images, sketches, adversarial twins), and answers what a
person asks in the explorer page: every layer's output for an input, the prediction, the
same with chosen filters frozen, two inputs compared layer by layer, saliency maps and
adversarial inputs. The server's ``/api/explorer`` routes are a thin layer over it, and
``convscope open MODEL`` starts a server with one.

Example:
    >>> from convscope.explorer import ExplorerSession
    >>> s = ExplorerSession()
    >>> m = s.add_model("lenet5-simplified", pretrained=False)
    >>> x = s.add_sample("foolbox-mnist", index=0)
    >>> s.prediction(m.id, x.id)["classes"]
    10
"""

from __future__ import annotations

from convscope.explorer._open import OpenedModel, open_model
from convscope.explorer._session import SAMPLE_SETS, ExplorerInput, ExplorerLimits, ExplorerModel, ExplorerSession

__all__ = ["SAMPLE_SETS", "ExplorerInput", "ExplorerLimits", "ExplorerModel", "ExplorerSession", "OpenedModel", "open_model"]
