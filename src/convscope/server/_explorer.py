"""``/api/explorer``: the model explorer's API, a thin layer over :class:`ExplorerSession`.

Every route is plain ``def``: FastAPI runs it in its thread pool, so captures, saliency and
attacks never block the event loop (and the live dashboard's WebSockets keep flowing). The
session serialises the heavy work itself and caches captures per (model, input, freeze set).

Uploads are raw request bodies (``Content-Type: application/octet-stream``) with the file
name in the query, so ``curl --data-binary @model.onnx`` and ``httpx.post(content=...)`` both
work without multipart encoding.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, StrictInt

from convscope.errors import (
    ConvscopeError,
    DataError,
    MissingDependencyError,
    ModelLoadError,
    NotFoundError,
    ServerError,
    UntrustedModelError,
)
from convscope.explorer import ExplorerSession
from convscope.server._app import Detail, read_limited

__all__ = ["explorer_router"]


class ModelInfo(BaseModel):
    id: str
    name: str
    format: str = Field(description="torch, export, state_dict, safetensors, pickle, onnx, keras or zoo")
    source: str
    origin: str = Field(description="zoo, file, upload or object")
    layers: int
    params: int
    input_spec: dict[str, Any] = Field(description="shape (C, H, W), value_range, mean, std, class_names")
    freeze: dict[str, list[int]] = Field(description="layer -> frozen filter indices")
    reference_max_abs_diff: float | None = None


class ModelDetails(ModelInfo):
    graph: dict[str, Any] = Field(description="the ModelGraph: layers, edges and containers (convscope.models.ModelGraph.to_dict)")
    observable: list[str] = Field(description="layers whose outputs can be shown and frozen, in execution order")
    sample_sets: list[str] = Field(description="bundled data sets that suit this model's input")


class InputInfo(BaseModel):
    id: str
    name: str
    kind: str = Field(description="sample, upload, sketch, adversarial or tensor")
    shape: list[int] = Field(description="C, H, W as stored")
    steps: list[dict[str, Any]] = Field(description="what was done to the file, in order")
    label: int | None = None
    parent: str | None = Field(None, description="for adversarial inputs: the input they were made from")
    adversarial: dict[str, Any] | None = Field(
        None,
        description="attack, params, target, original_prediction, prediction, success, l2, linf (pixel units); the attack "
        "runs on the model without its freeze set: freeze is that set, with_freeze the predictions of the original and "
        "the result with it applied (null when nothing was frozen)",
    )


class SessionInfo(BaseModel):
    trust: bool = Field(description="whether pickled whole models may be opened (server started with --trust)")
    limits: dict[str, int]
    models: list[ModelInfo]
    inputs: list[InputInfo]
    attacks: dict[str, dict[str, Any]] = Field(description="attack -> defaults, params (what each does), targeted, about")
    saliency_methods: list[str]
    zoo: list[str]


class Maps(BaseModel):
    count: int = Field(description="maps sent")
    total: int = Field(description="maps the layer has")
    width: int
    height: int
    data: str = Field(description="base64 of count x height x width uint8 pixels")
    vmin: list[float] = Field(description="per map: the value drawn black")
    vmax: list[float] = Field(description="per map: the value drawn white")
    units: int | None = Field(None, description="dense layers: one map holding this many units, row-major (the rest is padding)")


class LayerStats(BaseModel):
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    zeros: float = Field(description="fraction of exactly zero values")


class LayerOutput(BaseModel):
    layer: str
    kind: str
    category: str
    shape: list[int] = Field(description="per sample, channels-first")
    stats: LayerStats
    frozen: list[int]
    maps: Maps


class ClassScore(BaseModel):
    index: int
    name: str
    probability: float


class Prediction(BaseModel):
    predicted: int
    predicted_name: str
    classes: int
    top: list[ClassScore] = Field(description="up to 10 classes, most probable first")


class Outputs(BaseModel):
    model: str
    input: str
    layers: list[LayerOutput]
    prediction: Prediction
    freeze: dict[str, list[int]]


class FitInfo(BaseModel):
    model: str
    input: str
    shape: list[int]
    steps: list[str] = Field(description="what is done to the input for this model, in order")


class Divergence(BaseModel):
    layer: str
    l2: float | None
    cosine: float | None
    relative: float | None = Field(description="|b - a| / |a| (None when a is zero and b is not)")
    top_filters: list[int]


class ComparedMaps(BaseModel):
    layer: str
    shape: list[int]
    a: Maps
    b: Maps
    diff: Maps = Field(description="b - a per map, signed: 128 is no difference, vmax the largest |b - a|")


class Comparison(BaseModel):
    model: str
    a: str
    b: str
    diverges_at: str | None
    threshold: float
    layers: list[Divergence]
    maps: list[ComparedMaps]
    prediction_a: Prediction
    prediction_b: Prediction


class Saliency(BaseModel):
    model: str
    input: str
    method: str
    layer: str | None
    target: int
    target_name: str
    width: int
    height: int
    data: str = Field(description="base64 of height x width uint8: 255 is the strongest evidence")
    peak: float


#: the largest class index a request may name (bigger ones overflow torch's int64 before the check)
CLASS_MAX = 2**31 - 1
#: the most values an uploaded model's declared input (C x H x W) may hold
INPUT_VALUES_MAX = 3 * 2048 * 2048


class ZooRequest(BaseModel):
    name: str = Field(max_length=64, description="a zoo name (lenet5-simplified, lenet5, vgg12, vgg16, resnet50)")
    pretrained: bool = True


class SampleRequest(BaseModel):
    dataset: str = Field(max_length=64)
    index: int = Field(0, ge=0)


class AdversarialRequest(BaseModel):
    input: str
    attack: str = "pgd"
    params: dict[str, Any] = Field(default_factory=dict, description="the attack's parameters (GET /api/explorer lists them)")
    target: int | None = Field(None, ge=0, le=CLASS_MAX, description="a class to reach; None for untargeted")
    seed: int = Field(0, ge=0, le=2**32 - 1)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Detail} for code in codes}


def _status(exc: ConvscopeError) -> ServerError:
    """One place where the explorer's errors become HTTP statuses."""
    if isinstance(exc, ServerError):
        return exc
    if isinstance(exc, UntrustedModelError):
        return ServerError(f"{exc} (the server was started without --trust)", status_code=403)
    if isinstance(exc, NotFoundError):
        return ServerError(str(exc), status_code=404)
    if isinstance(exc, MissingDependencyError):
        return ServerError(str(exc), status_code=501)
    if isinstance(exc, ModelLoadError | DataError):
        return ServerError(str(exc), status_code=422)
    return ServerError(str(exc), status_code=400)


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ConvscopeError as exc:
        raise _status(exc) from None
    except (RuntimeError, ValueError, TypeError, IndexError, OSError) as exc:
        # a user's model or file failing inside torch/onnx2torch/keras: the request's fault, not the server's
        raise ServerError(f"the model or file could not be used: {type(exc).__name__}: {str(exc)[:500]}", status_code=422) from None


def _shape(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ServerError(f"input_shape must be three whole numbers >= 1, C,H,W like 1,28,28; got {text!r}", status_code=422)
    if math.prod(shape) > INPUT_VALUES_MAX:
        raise ServerError(
            f"input_shape {text!r} holds {math.prod(shape):,} values, over the {INPUT_VALUES_MAX:,} (3 x 2048 x 2048) an upload "
            "may declare; open bigger models from the command line: convscope open MODEL --input-shape C,H,W",
            status_code=422,
        )
    return shape


def explorer_router(session: ExplorerSession, *, dependencies: list[Any] | None = None) -> APIRouter:
    """The ``/api/explorer`` routes over one session (``create_app`` mounts them)."""
    router = APIRouter(prefix="/api/explorer", tags=["explorer"], dependencies=dependencies or [])
    limits = session.limits

    def details(model_id: str) -> dict[str, Any]:
        model = session.model(model_id)
        return {**model.info(), "graph": model.loaded.graph.to_dict(), "observable": session._hookable(model),
                "sample_sets": session.sample_sets(model_id)}

    @router.get("", summary="The session: models, inputs, limits, attacks and saliency methods", response_model=SessionInfo)
    def get_session() -> dict[str, Any]:
        from convscope.analysis.attacks import list_attacks
        from convscope.analysis.saliency import METHODS
        from convscope.models import list_models

        return {
            "trust": session.trust,
            "limits": {k: int(v) for k, v in vars(limits).items()},
            "models": [m.info() for m in session.models.values()],
            "inputs": [i.info() for i in session.inputs.values()],
            "attacks": {k: {**v, "defaults": {p: d for p, d in v["defaults"].items()}} for k, v in list_attacks().items()},
            "saliency_methods": list(METHODS),
            "zoo": [e.name for e in list_models()],
        }

    @router.post("/models/zoo", summary="Add a bundled zoo model", status_code=201, response_model=ModelDetails,
                 responses=_errors(404, 409, 422))
    def add_zoo(req: ZooRequest = Body(...)) -> dict[str, Any]:
        from convscope.models import list_models

        if req.name not in {e.name for e in list_models()}:  # a name, never a path on the server's disk
            raise ServerError(f"no zoo model {req.name!r}; zoo models are {', '.join(e.name for e in list_models())}", status_code=404)
        model = _call(session.add_model, req.name, pretrained=req.pretrained, origin="zoo")
        return details(model.id)

    @router.post(
        "/models/upload",
        summary="Upload a model file (raw body; the extension of filename says the format)",
        description="Any format convscope.load_model opens: .pt2, .pt/.pth/.bin (state dicts need `architecture`), "
        ".safetensors, .onnx, .keras, .h5. Pickles of whole models are refused unless the server runs with --trust.",
        status_code=201,
        response_model=ModelDetails,
        openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}, "required": True}},
        responses=_errors(403, 409, 413, 422, 501),
    )
    async def upload_model(
        request: Request,
        filename: str = Query(..., max_length=255, description="the file's name, e.g. lenet.onnx"),
        architecture: str | None = Query(None, max_length=200, description="for state dicts: zoo name or package.module:Class"),
        input_shape: str | None = Query(None, max_length=40, description="C,H,W where the file does not say"),
    ) -> dict[str, Any]:
        import asyncio

        data = await read_limited(request, limits.max_model_bytes, what="the file")
        model = await asyncio.to_thread(_call, session.add_model_bytes, data, filename=filename, architecture=architecture,
                                        input_shape=_shape(input_shape))
        return details(model.id)

    @router.get("/models/{model}", summary="One model: its graph, input spec and freeze set", response_model=ModelDetails,
                responses=_errors(404))
    def get_model(model: str) -> dict[str, Any]:
        return _call(details, model)

    @router.delete("/models/{model}", summary="Remove a model", status_code=204, responses=_errors(404))
    def delete_model(model: str) -> Response:
        _call(session.remove_model, model)
        return Response(status_code=204)

    @router.put(
        "/models/{model}/freeze",
        summary="Replace the model's freeze set: {layer: [filter indices]} (zeroed in every capture)",
        response_model=dict[str, list[int]],
        responses=_errors(404, 422),
    )
    def put_freeze(
        model: str,
        # strict: "1" and true were taken as filter 1 by pydantic's lenient parsing
        freeze: dict[str, list[StrictInt]] = Body(..., examples=[{"conv1": [0, 3]}], description="layer -> filter indices (JSON integers)"),
    ) -> dict[str, list[int]]:
        return _call(session.set_freeze, model, freeze)

    @router.post("/inputs/upload", summary="Upload an image (raw body: PNG, JPEG, BMP, GIF, WebP)", status_code=201,
                 response_model=InputInfo,
                 openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}, "required": True}},
                 responses=_errors(409, 413, 422))
    async def upload_input(
        request: Request,
        filename: str = Query("upload", max_length=255),
        kind: str = Query("upload", pattern="^(upload|sketch)$", description="'sketch' for drawings (framed like MNIST for 28x28 grey models)"),
    ) -> dict[str, Any]:
        import asyncio

        data = await read_limited(request, limits.max_image_bytes, what="the file")
        item = await asyncio.to_thread(_call, session.add_input_bytes, data, name=filename, kind=kind)
        return item.info()

    @router.post("/inputs/sample", summary="Add a bundled sample as an input", status_code=201, response_model=InputInfo,
                 responses=_errors(404, 409, 422))
    def add_sample(req: SampleRequest = Body(...)) -> dict[str, Any]:
        return _call(session.add_sample, req.dataset, index=req.index).info()

    @router.get("/inputs/{input}", summary="One input", response_model=InputInfo, responses=_errors(404))
    def get_input(input: str) -> dict[str, Any]:
        return _call(session.input, input).info()

    @router.delete("/inputs/{input}", summary="Remove an input", status_code=204, responses=_errors(404))
    def delete_input(input: str) -> Response:
        _call(session.remove_input, input)
        return Response(status_code=204)

    @router.get("/inputs/{input}/image", summary="The input as a PNG (as a model sees it with ?model=)",
                response_class=Response, responses={200: {"content": {"image/png": {}}}, **_errors(404)})
    def input_image(input: str, model: str | None = None) -> Response:
        return Response(_call(session.input_png, input, model_id=model), media_type="image/png",
                        headers={"Cache-Control": "no-store"})

    @router.get("/models/{model}/inputs/{input}/fit", summary="What is done to an input for a model", response_model=FitInfo,
                responses=_errors(404))
    def fit_info(model: str, input: str) -> dict[str, Any]:
        x = _call(session.fitted, model, input)
        return {"model": model, "input": input, "shape": [int(v) for v in x.shape[1:]], "steps": _call(session.fit_steps, model, input)}

    @router.get(
        "/models/{model}/inputs/{input}/outputs",
        summary="Every layer's output (maps and statistics) and the prediction, with the freeze set applied",
        response_model=Outputs,
        responses=_errors(404, 422),
    )
    def outputs(
        model: str,
        input: str,
        layer: list[str] | None = Query(None, description="only these layers (repeatable); default every observable layer"),
        max_size: int = Query(32, ge=1, le=1024, description="maps are shrunk so no side exceeds this"),
        max_maps: int | None = Query(64, ge=1, le=100_000, description="at most this many maps per layer"),
    ) -> dict[str, Any]:
        return _call(session.layer_outputs, model, input, layers=layer, max_size=max_size, max_maps=max_maps)

    @router.get("/models/{model}/inputs/{input}/prediction", summary="The prediction (freeze set applied)",
                response_model=Prediction, responses=_errors(404, 422))
    def prediction(model: str, input: str) -> dict[str, Any]:
        return _call(session.prediction, model, input)

    @router.get(
        "/models/{model}/compare",
        summary="Two inputs layer by layer: divergence of every layer; maps of A, B and B - A for chosen layers",
        response_model=Comparison,
        responses=_errors(404, 422),
    )
    def compare(
        model: str,
        a: str = Query(..., description="input id of A (the reference)"),
        b: str = Query(..., description="input id of B"),
        layer: list[str] | None = Query(None, description="layers whose maps to return (repeatable)"),
        max_size: int = Query(64, ge=1, le=1024),
        max_maps: int | None = Query(64, ge=1, le=100_000),
    ) -> dict[str, Any]:
        return _call(session.compare, model, a, b, layers=layer, max_size=max_size, max_maps=max_maps)

    @router.get("/models/{model}/inputs/{input}/saliency", summary="Which input pixels decided the prediction",
                response_model=Saliency, responses=_errors(404, 422, 501))
    def saliency(
        model: str,
        input: str,
        method: str = Query("gradient", description="gradient, integrated_gradients, gradcam or occlusion"),
        target: int | None = Query(None, ge=0, le=CLASS_MAX, description="class to explain; default the predicted one"),
    ) -> dict[str, Any]:
        return _call(session.saliency, model, input, method=method, target=target)

    @router.post("/models/{model}/adversarial", summary="Make an adversarial twin of an input; it joins the inputs",
                 status_code=201, response_model=InputInfo, responses=_errors(404, 409, 422, 501))
    def adversarial(model: str, req: AdversarialRequest = Body(...)) -> dict[str, Any]:
        return _call(session.adversarial, model, req.input, attack=req.attack, params=req.params, target=req.target, seed=req.seed).info()

    return router
