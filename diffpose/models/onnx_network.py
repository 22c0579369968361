"""An exported model as a network: the methods of :class:`~diffpose.models.ClipNetwork` run by onnxruntime.

``diffpose export --onnx DIR`` writes one ONNX graph per network method an estimator calls when it predicts
(its :meth:`~diffpose.estimators.PoseEstimator.graphs`) and a manifest. :class:`OnnxNetwork` reads them back and
offers those methods, each described by its :class:`~diffpose.models.graphs.Graph` (how its arguments become
the graph's inputs and its outputs the method's result), plus ``encode_condition``; so the estimator, the DDIM
loop, the ensemble, the codec and feature reuse are the very same Python code as with PyTorch::

    predictor = Predictor.from_onnx("exported/", ensemble=4)       # or: diffpose infer --onnx DIR

Tensors go in and come out as CPU ``torch.Tensor`` (zero-copy views of the arrays onnxruntime uses).
onnxruntime is an optional dependency (``pip install 'diffpose[onnx]'``), imported when a model is opened.

A folder is checked before it runs: every graph name in the manifest is a plain file name inside the folder
(no ``/``, no ``..``: nothing outside it is opened), the manifest lists a graph for every method the model kind
calls, and each graph's input and output names are those its description expects (a manifest whose graph
names were swapped, or a graph file of another export, is refused in one line); ``num_frames`` must match the
frames axis of the ``features`` input. Anything onnxruntime still rejects on the first run is one line too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffpose.config import Config, config_from_dict
from diffpose.data.paths import single_name
from diffpose.errors import DiffPoseError
from diffpose.models.graphs import Graph

MANIFEST = "diffpose_onnx.json"
FORMAT_VERSION = 2


def _np(x: torch.Tensor) -> np.ndarray:
    """A graph input: float32 for floating-point tensors (the graphs are traced in float32), others as they are."""
    x = x.detach().cpu()
    return (x.float() if x.is_floating_point() else x).contiguous().numpy()


def read_manifest(folder: str | Path) -> tuple[dict[str, Any], Config]:
    """The export manifest of ``folder`` and the checkpoint config it holds."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DiffPoseError(f"not an exported diffpose model (no {MANIFEST}); run diffpose export --onnx", folder)
    try:
        manifest = json.loads(path.read_text())
        version = manifest.get("version")
        if version != FORMAT_VERSION:
            raise DiffPoseError(f"export format version {version!r}, this diffpose reads {FORMAT_VERSION}: export "
                                "the checkpoint again with diffpose export --onnx", path)
        graphs, sizes = manifest["graphs"], manifest.get("bytes", {})
        if not isinstance(graphs, dict) or not isinstance(sizes, dict):
            raise DiffPoseError("unreadable export manifest: 'graphs' and 'bytes' must be objects", path)
        num_frames = manifest.get("num_frames")
        if type(num_frames) is not int or num_frames < 1:
            raise DiffPoseError(f"unreadable export manifest: num_frames must be a positive integer, got "
                                f"{num_frames!r}", path, "num_frames")
        for method, name in graphs.items():
            single_name(name, path, f"graphs.{method}", what="graph file")  # nothing outside the folder
            graph = Path(folder) / name
            if not graph.is_file():
                raise DiffPoseError(f"incomplete export: graph {name} is missing; export again with diffpose export "
                                    "--onnx", folder)
            if name in sizes and graph.stat().st_size != sizes[name]:
                raise DiffPoseError(f"not a valid ONNX graph: {graph.stat().st_size} bytes, the manifest says "
                                    f"{sizes[name]} (truncated?); export again with diffpose export --onnx", graph)
        return manifest, config_from_dict(manifest["config"])
    except RecursionError:
        raise DiffPoseError("unreadable export manifest: JSON nested too deeply", path) from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DiffPoseError(f"unreadable export manifest: {e}", path) from None


def _check_signature(session: Any, graph: Graph, path: Path, num_frames: int) -> None:
    """Refuse a graph whose input / output names are not those of its description (swapped or foreign file)."""
    inputs = tuple(i.name for i in session.get_inputs())
    outputs = tuple(o.name for o in session.get_outputs())
    if inputs != tuple(graph.inputs) or outputs != tuple(graph.outputs):
        raise DiffPoseError(f"graph does not fit the manifest: it reads ({', '.join(inputs)}) and writes "
                            f"({', '.join(outputs)}), the {graph.method} graph reads ({', '.join(graph.inputs)}) and "
                            f"writes ({', '.join(graph.outputs)}); a swapped or foreign file? export again with "
                            "diffpose export --onnx", path)
    for i in session.get_inputs():
        if i.name == "features" and len(i.shape) >= 2 and isinstance(i.shape[1], int) and i.shape[1] != num_frames:
            raise DiffPoseError(f"graph reads clips of {i.shape[1]} frames, the manifest says num_frames "
                                f"{num_frames}; export again with diffpose export --onnx", path)


def _sessions(folder: Path, files: dict[str, str], threads: int | None, providers: list[str] | None
              ) -> dict[str, Any]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise DiffPoseError("running ONNX graphs needs onnxruntime: pip install 'diffpose[onnx]'") from None
    options = ort.SessionOptions()
    # Threads that spin while waiting for work take the cores from the Python and PyTorch code between the
    # graph calls (cropping, DDIM arithmetic, decoding); docs/speed.md has the measurement.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    providers = providers or ["CPUExecutionProvider"]
    out = {}
    for method, name in files.items():
        path = folder / name
        if not path.is_file():
            raise DiffPoseError(f"missing graph {name}; export again with diffpose export --onnx", folder)
        try:
            out[method] = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for damaged files
            raise DiffPoseError(f"not a valid ONNX graph (truncated or damaged; export again): "
                                f"{' '.join(str(e).split())[:160]}", path) from None
    return out


class OnnxNetwork:
    """The exported graphs of ``folder`` as a network (see the module docstring).

    Args:
        folder: the export folder.
        graphs: the estimator's graph descriptions (``{method: Graph}``,
            :meth:`~diffpose.estimators.PoseEstimator.graphs` of the manifest's config); every method the
            manifest lists must be described.
        threads: onnxruntime intra-op threads (None: its default);
        providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
    """

    def __init__(self, folder: str | Path, graphs: Mapping[str, Graph], threads: int | None = None,
                 providers: list[str] | None = None):
        self.folder = Path(folder)
        self.manifest, self.cfg = read_manifest(self.folder)
        files = dict(self.manifest["graphs"])
        unknown = sorted(set(files) - set(graphs))
        if unknown:
            raise DiffPoseError(f"the manifest lists graphs this model kind does not run: {', '.join(unknown)}; "
                                "export again with diffpose export --onnx", self.folder / MANIFEST)
        missing = [method for method in graphs if method not in files]
        if missing:
            raise DiffPoseError(f"the manifest lists no graph for {', '.join(missing)}, which this model kind runs; "
                                "export again with diffpose export --onnx", self.folder / MANIFEST)
        self.graphs = {method: graphs[method] for method in files}
        self.sessions = _sessions(self.folder, files, threads, providers)
        self.num_joints = int(self.cfg.model.num_joints)
        self.num_frames = int(self.manifest["num_frames"])
        for method, session in self.sessions.items():
            _check_signature(session, self.graphs[method], self.folder / files[method], self.num_frames)
        self.heatmap_size = tuple(int(v) for v in self.cfg.model.heatmap_size)  # (H, W)

    def eval(self) -> OnnxNetwork:
        return self

    def __getattr__(self, method: str) -> Callable[..., Any]:
        """The exported graph of ``method`` as that method: its arguments fed in, its outputs unpacked."""
        graphs = self.__dict__.get("graphs", {})
        if method not in graphs:
            raise AttributeError(f"this export has no graph for {method}")
        graph, session = graphs[method], self.sessions[method]

        def call(*args: Any, **kwargs: Any) -> Any:
            feeds = {k: _np(v) for k, v in graph.feeds(*args, **kwargs).items()}
            try:
                outputs = session.run(None, feeds)
            except Exception as e:  # onnxruntime's own types; the graph does not fit what the model feeds it
                raise DiffPoseError(f"graph rejects the {method} inputs ({' '.join(str(e).split())[:200]}); it does "
                                    "not fit the manifest: export again with diffpose export --onnx",
                                    self.folder / self.manifest["graphs"][method]) from None
            return graph.unpack([torch.from_numpy(o) for o in outputs])
        return call

    def encode_condition(self, clips: torch.Tensor) -> torch.Tensor:
        """``clips (B, T, 3, H_in, W_in)`` -> ``cond (B, C, h, w)``."""
        b, t = clips.shape[:2]
        feats = self.backbone_features(clips.flatten(0, 1))  # (B*T, D, h, w)
        return self.condition_from_features(feats.reshape(b, t, *feats.shape[1:]))  # (B, C, h, w)
