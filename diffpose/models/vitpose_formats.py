"""Published ViTPose weights, read as they are into the single-frame :class:`~diffpose.models.BaselineNet`.

Three layouts are converted to our key names (``backbone.*`` of :class:`~diffpose.models.vit.ViT`, ``keypoint_head.*``
of :mod:`diffpose.models.heads`) by the renaming tables :data:`_HF` and :data:`_MMPOSE1`:

* **mmpose** (the ViTPose repository, mmpose 0.x; ``.pth`` with ``state_dict``, or a raw state dict): already our
  names, ``backbone.{patch_embed.proj, pos_embed, blocks.N.*, last_norm}``, ``keypoint_head.*``.
* **mmpose 1.x** (``mmpretrain.VisionTransformer`` with ``with_cls_token=False`` and ``HeatmapHead``):
  ``backbone.layers.N.{ln1, attn.qkv, attn.proj, ln2, ffn.layers.0.0, ffn.layers.1}``, ``backbone.ln1``,
  ``head.{deconv_layers, final_layer}`` (the simple head's ReLU and x4 upsampling are its parameterless neck).
  Its ``pos_embed`` ``(1, h*w, D)`` has no class slot: a zero one is put in front (ours adds slot 0 to every token).
* **transformers** ``VitPoseForPoseEstimation`` (a ``save_pretrained`` folder with ``config.json``, or a bare
  ``.safetensors`` file): ``attention.attention.{query, key, value}`` are concatenated in that order into
  ``attn.qkv``; the head's ``conv`` is ``final_layer``, ``deconv1, batchnorm1, deconv2, batchnorm2`` are
  ``deconv_layers.{0, 1, 3, 4}``; position embeddings as ours. Its LayerNorm epsilon (``config.json``; default
  1e-12, ViTPose's is 1e-6) is kept in :attr:`PublishedViTPose.layer_norm_eps`, set by :func:`load_published_vitpose`.

ViTPose+ mixture-of-experts MLPs (``mlp.experts.E`` beside a narrower ``mlp.fc2``, output ``[fc2(h), expert(h)]``)
are folded exactly into one ``fc2`` with the expert of dataset 0 (COCO, the dataset the main head decodes).

Size and head come from the tensors: width and patch from the patch convolution, depth from the block indices,
MLP ratio from ``fc1``, the head from its layers (deconvolutions: classic; a lone 3x3 ``final_layer``: simple),
joints from its last layer, the token grid from ``pos_embed``'s slots (4:3 ``(4k, 3k)`` or square; crop = grid x
patch, heatmap = grid x 4). Attention heads are not in the tensors: a transformers folder's ``config.json`` gives
them, else ViTPose's sizes (:data:`SIZES`) or the caller. Files are read with ``torch.load(weights_only=True)``
or ``safetensors``: nothing in them is executed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from diffpose.config import load_config
from diffpose.errors import DiffPoseError
from diffpose.models.baseline import BaselineNet
from diffpose.models.heads import SIMPLE_UPSAMPLE
from diffpose.models.stem import token_layout
from diffpose.models.vit import LN_EPS

SIZES = {384: ("S", 12), 768: ("B", 12), 1024: ("L", 16), 1280: ("H", 16)}  # width -> (ViTPose size, heads)
PATCH_PADDING = 2  # every ViTPose pads its patch convolution by 2
HF_LN_EPS = 1e-12  # transformers' VitPoseBackboneConfig default (ViTPose itself trained with 1e-6)
BOX_ENLARGE = 1.25  # ViTPose enlarges person boxes by 1.25 before cropping
EXPERT = 0  # the ViTPose+ expert folded into fc2: dataset 0, the one the main head decodes
PIP_HINT = "pip install 'diffpose[vitpose]'"

_HF = [  # transformers name -> ours (regex, replacement); qkv and experts are handled apart
    (r"^backbone\.embeddings\.patch_embeddings\.projection\.", "backbone.patch_embed.proj."),
    (r"^backbone\.embeddings\.position_embeddings$", "backbone.pos_embed"),
    (r"^backbone\.encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"backbone.blocks.\1.attn.proj."),
    (r"^backbone\.encoder\.layer\.(\d+)\.layernorm_before\.", r"backbone.blocks.\1.norm1."),
    (r"^backbone\.encoder\.layer\.(\d+)\.layernorm_after\.", r"backbone.blocks.\1.norm2."),
    (r"^backbone\.encoder\.layer\.(\d+)\.mlp\.(fc1|fc2)\.", r"backbone.blocks.\1.mlp.\2."),
    (r"^backbone\.layernorm\.", "backbone.last_norm."),
    (r"^head\.conv\.", "keypoint_head.final_layer."),
    (r"^head\.deconv1\.", "keypoint_head.deconv_layers.0."),
    (r"^head\.batchnorm1\.", "keypoint_head.deconv_layers.1."),
    (r"^head\.deconv2\.", "keypoint_head.deconv_layers.3."),
    (r"^head\.batchnorm2\.", "keypoint_head.deconv_layers.4."),
]
_MMPOSE1 = [  # mmpose 1.x / mmpretrain name -> ours
    (r"^backbone\.patch_embed\.projection\.", "backbone.patch_embed.proj."),
    (r"^backbone\.layers\.(\d+)\.ln1\.", r"backbone.blocks.\1.norm1."),
    (r"^backbone\.layers\.(\d+)\.ln2\.", r"backbone.blocks.\1.norm2."),
    (r"^backbone\.layers\.(\d+)\.attn\.(qkv|proj)\.", r"backbone.blocks.\1.attn.\2."),
    (r"^backbone\.layers\.(\d+)\.ffn\.layers\.0\.0\.", r"backbone.blocks.\1.mlp.fc1."),
    (r"^backbone\.layers\.(\d+)\.ffn\.layers\.1\.", r"backbone.blocks.\1.mlp.fc2."),
    (r"^backbone\.ln1\.", "backbone.last_norm."),
    (r"^head\.(deconv_layers|final_layer)\.", r"keypoint_head.\1."),
]
_HEAD_KEY = {"mmpose": "keypoint_head.final_layer.weight", "mmpose1": "head.final_layer.weight",
             "transformers": "head.conv.weight"}  # the last head layer: present in a whole model
_QKV = re.compile(r"^backbone\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$")
_EXPERT = re.compile(r"^(backbone\.(?:blocks|encoder\.layer)\.\d+\.mlp)\.experts\.(\d+)\.(weight|bias)$")


@dataclass
class PublishedViTPose:
    """A published ViTPose in our key names, and the architecture read from it.

    ``state`` loads into ``BaselineNet.from_config(load_config("paper", overrides=config_overrides(p)).model)``
    with ``strict=True`` (see :func:`load_published_vitpose`, which also sets ``layer_norm_eps``).
    ``image_size`` / ``heatmap_size`` are ``(H, W)``; ``deconv_channels`` is None for the simple head.
    """

    state: dict[str, torch.Tensor]
    embed_dim: int
    depth: int
    num_heads: int
    head: str  # "classic" or "simple"
    deconv_channels: int | None
    num_joints: int
    image_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    source: str  # e.g. "mmpose ViTPose-B classic", "transformers VitPose-B simple (folder)"
    patch_size: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = LN_EPS  # the LayerNorm epsilon the source implementation uses
    ignored: list[str] = field(default_factory=list)  # file keys outside the single-frame model (extra heads, ...)


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _load_pth(path: Path) -> dict[str, torch.Tensor] | None:
    """A ``.pth``'s state dict (``state_dict`` entry or the dict itself), or None for a diffpose checkpoint."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a zip-format file (mmap needs one), or not a torch file at all
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise DiffPoseError(f"cannot read as a weights-only torch checkpoint: {_first_line(e)}", path) from None
    if isinstance(obj, dict) and str(obj.get("format", "")).startswith("diffpose-checkpoint"):
        return None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DiffPoseError("expected a dict of tensors or a dict with a 'state_dict' entry", path)
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise DiffPoseError(f"reading safetensors weights needs the safetensors package: {PIP_HINT}", path) from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # SafetensorError (truncated, bad header), OSError
        raise DiffPoseError(f"cannot read as a safetensors file: {_first_line(e)}", path) from None


def _load_hf_folder(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(config.json as a dict, weights)`` of a transformers ``save_pretrained`` folder."""
    if not (path / "config.json").is_file():
        raise DiffPoseError("a folder, but not a transformers VitPose folder (no config.json); give a diffpose "
                            "checkpoint file, a ViTPose .pth or .safetensors file, or such a folder", path)
    try:
        config = json.loads((path / "config.json").read_text())
        model_type = config.get("model_type")
    except (OSError, ValueError, AttributeError) as e:
        raise DiffPoseError(f"cannot read config.json of a transformers folder: {_first_line(e)}", path) from None
    if model_type != "vitpose":
        raise DiffPoseError(f"expected a transformers VitPose folder (model_type 'vitpose'), got {model_type!r}", path)
    if (path / "model.safetensors").is_file():
        return config, _load_safetensors(path / "model.safetensors")
    index = path / "model.safetensors.index.json"  # sharded weights
    try:
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (OSError, ValueError, KeyError, AttributeError):
        raise DiffPoseError("no model.safetensors (or readable shard index) beside config.json", path) from None
    return config, {k: v for shard in shards for k, v in _load_safetensors(path / shard).items()}


def _layout(keys: dict[str, torch.Tensor]) -> str | None:
    """``"transformers"``, ``"mmpose1"``, ``"mmpose"`` (our names) or None, from a state dict's keys."""
    if any(k.startswith(("backbone.embeddings.", "backbone.encoder.layer.")) for k in keys):
        return "transformers"
    if any(k.startswith("backbone.layers.") for k in keys) and "backbone.patch_embed.projection.weight" in keys:
        return "mmpose1"
    if any(k.startswith("backbone.blocks.") for k in keys) and "backbone.patch_embed.proj.weight" in keys:
        return "mmpose"
    return None


def to_diffpose_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Any of the three layouts -> our key names (ViTPose+ experts folded); other state dicts are returned as is.

    A bare transformers ``VitPoseBackbone`` (keys ``embeddings.*``, ``encoder.*``) is read with a ``backbone.``
    prefix. Keys no rule maps keep their names (a strict load then reports them).
    """
    if any(k.startswith(("embeddings.", "encoder.layer.")) for k in state):
        state = {("backbone." + k if k.startswith(("embeddings.", "encoder.", "layernorm.")) else k): v
                 for k, v in state.items()}
    layout = _layout(state)
    if layout is None:
        return state
    rules = {"transformers": _HF, "mmpose1": _MMPOSE1, "mmpose": []}[layout]
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    experts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if m := _QKV.match(key):
            qkv.setdefault((m[1], m[3]), {})[m[2]] = value
            continue
        if m := _EXPERT.match(key):
            if int(m[2]) == EXPERT:
                experts.setdefault(m[1], {})[m[3]] = value
            continue
        for pattern, repl in rules:
            new, n = re.subn(pattern, repl, key)
            if n:
                key = new
                break
        out[key] = value
    for (layer, kind), parts in qkv.items():
        if set(parts) == {"query", "key", "value"}:
            out[f"backbone.blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]])
        else:  # incomplete: keep what is there under its own name
            out.update({f"backbone.encoder.layer.{layer}.attention.attention.{p}.{kind}": v for p, v in parts.items()})
    for mlp, parts in experts.items():
        ours = re.sub(r"^backbone\.encoder\.layer\.", "backbone.blocks.", mlp)
        for kind, value in parts.items():  # MoE output is [fc2(h), expert(h)]: stack the rows
            if f"{ours}.fc2.{kind}" in out:
                out[f"{ours}.fc2.{kind}"] = torch.cat([out[f"{ours}.fc2.{kind}"], value])
            else:
                out[f"{mlp}.experts.{EXPERT}.{kind}"] = value
    if layout == "mmpose1" and "backbone.pos_embed" in out and "backbone.cls_token" not in out:
        pos = out["backbone.pos_embed"]  # (1, h*w, D): no class slot
        out["backbone.pos_embed"] = torch.cat([pos.new_zeros(pos.shape[0], 1, pos.shape[2]), pos], dim=1)
    return out


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a transformers folder or ``.safetensors`` file in our key names (to initialise a backbone)."""
    if not (path := Path(path)).exists():
        raise DiffPoseError("checkpoint file not found", path)
    return to_diffpose_keys(_load_hf_folder(path)[1] if path.is_dir() else _load_safetensors(path))


def _read_any(path: Path) -> tuple[str, dict[str, torch.Tensor], dict | None]:
    """``(layout, state in the file's names, config.json or None)``; layout "" when not recognised."""
    if not path.exists():
        raise DiffPoseError("file not found", path)
    if path.is_dir():
        config, state = _load_hf_folder(path)
        return _layout(state) or "", state, config
    state = _load_safetensors(path) if path.suffix == ".safetensors" else _load_pth(path)
    return (_layout(state) or "", state, None) if state is not None else ("", {}, None)


def detect_vitpose(path: str | Path) -> str | None:
    """The layout of a published ViTPose (``"mmpose"``, ``"mmpose1"``, ``"transformers"``) with its head, or None.

    None for a missing or unreadable file, a diffpose checkpoint or any other state dict. Raises
    :class:`DiffPoseError` only when a ``.safetensors`` file or a transformers folder needs the missing package.
    """
    path = Path(path)
    try:
        layout, state, _ = _read_any(path)
    except DiffPoseError as e:
        if PIP_HINT in str(e):
            raise
        return None
    return layout if layout and _HEAD_KEY[layout] in state else None


def _grid(tokens: int, path: Path) -> tuple[int, int]:
    """The token grid ``(h, w)`` of ``tokens`` position slots: 4:3 ``(4k, 3k)`` or square."""
    k, s = math.isqrt(tokens // 12), math.isqrt(tokens)
    if k > 0 and 12 * k * k == tokens:
        return 4 * k, 3 * k
    if s > 0 and s * s == tokens:
        return s, s
    raise DiffPoseError(f"cannot infer the token grid from {tokens} position slots (expected a 4:3 or square grid)",
                        path)


def _hf_settings(config: dict, path: Path) -> dict:
    """What a transformers ``config.json`` fixes beyond the tensors, checked against what diffpose's ViT does."""
    bb = config.get("backbone_config") or {}
    if bb.get("hidden_act", "gelu") != "gelu":
        raise DiffPoseError(f"activation {bb['hidden_act']!r} is not supported (expected exact 'gelu')", path)
    if int(config.get("scale_factor", SIMPLE_UPSAMPLE)) != SIMPLE_UPSAMPLE:
        raise DiffPoseError(f"scale_factor {config['scale_factor']} is not supported (expected {SIMPLE_UPSAMPLE})",
                            path)
    out = {"num_heads": bb.get("num_attention_heads", 12), "eps": float(bb.get("layer_norm_eps", HF_LN_EPS)),
           "simple": bool(config.get("use_simple_decoder", True)), "layers": bb.get("num_hidden_layers", 12),
           "width": bb.get("hidden_size", 768)}
    size = bb.get("image_size", (256, 192))
    out["image_size"] = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))  # (H, W)
    indices = bb.get("out_indices") or bb.get("_out_indices")
    out["used_layers"] = int(indices[-1]) % (out["layers"] + 1) if indices else out["layers"]
    return out


def read_published_vitpose(path: str | Path, num_heads: int | None = None) -> PublishedViTPose:
    """Read a published ViTPose (any layout above) into our key names, with its architecture.

    Args:
        path: a ``.pth`` file, a ``.safetensors`` file or a transformers ``save_pretrained`` folder.
        num_heads: attention heads, for widths outside :data:`SIZES` (a transformers folder states its own).

    Raises:
        DiffPoseError: one line naming the file: not one of these layouts, an unknown width, a truncated or
            inconsistent file, a transformers setting diffpose's ViT does not have.
    """
    path = Path(path)
    layout, raw, config = _read_any(path)
    if not layout:
        raise DiffPoseError("not a published ViTPose: expected mmpose 'backbone.blocks.*' / 'backbone.layers.*' "
                            "keys or a transformers VitPose folder or .safetensors file", path)
    if layout == "mmpose1" and "backbone.cls_token" in raw:
        raise DiffPoseError("mmpose 1.x ViT with a class token is not supported (ViTPose uses with_cls_token=False)",
                            path)
    state = to_diffpose_keys(raw)
    need = ["backbone.patch_embed.proj.weight", "backbone.pos_embed", "keypoint_head.final_layer.weight"]
    if absent := [k for k in need if k not in state]:
        raise DiffPoseError(f"expected a whole ViTPose (backbone and heatmap head); {absent[0]} is missing", path)
    proj = state["backbone.patch_embed.proj.weight"]  # (D, 3, p, p)
    embed_dim, patch = int(proj.shape[0]), int(proj.shape[-1])
    depth = len({m[1] for k in state if (m := re.match(r"backbone\.blocks\.(\d+)\.", k))})
    hf = _hf_settings(config, path) if config is not None else None
    if hf is not None:
        if hf["width"] != embed_dim or hf["layers"] != depth:
            raise DiffPoseError(f"config.json says width {hf['width']} and {hf['layers']} layers, the weights have "
                                f"width {embed_dim} and {depth} layers", path)
        depth = hf["used_layers"]  # the head reads layer out_indices[-1]'s output: later layers are unused
        state = {k: v for k, v in state.items()
                 if not ((m := re.match(r"backbone\.blocks\.(\d+)\.", k)) and int(m[1]) >= depth)}
    heads = hf["num_heads"] if hf is not None else num_heads or SIZES.get(embed_dim, ("", None))[1]
    if heads is None:
        raise DiffPoseError(f"unknown ViTPose width {embed_dim} (known: {', '.join(map(str, SIZES))}); "
                            "cannot tell its attention heads", path)
    mlp_ratio = state["backbone.blocks.0.mlp.fc1.weight"].shape[0] / embed_dim if depth else 4.0
    final = state["keypoint_head.final_layer.weight"]  # (J, C, k, k)
    num_joints = int(final.shape[0])
    if "keypoint_head.deconv_layers.0.weight" in state:
        head, deconv = "classic", int(state["keypoint_head.deconv_layers.0.weight"].shape[1])
    elif tuple(final.shape[1:]) == (embed_dim, 3, 3):
        head, deconv = "simple", None
    else:
        raise DiffPoseError(f"unsupported heatmap head: final layer {tuple(final.shape)} without deconvolutions", path)
    grid = _grid(int(state["backbone.pos_embed"].shape[1]) - 1, path)
    image_size = (grid[0] * patch, grid[1] * patch)
    if hf is not None and hf["simple"] != (head == "simple"):
        raise DiffPoseError(f"config.json's use_simple_decoder={hf['simple']} does not match the {head} head", path)
    image_size = hf["image_size"] if hf is not None else image_size
    if token_layout(image_size, "patch", patch, PATCH_PADDING).grid != grid:
        raise DiffPoseError(f"crop {image_size} with patch {patch} does not give the {grid} token grid of pos_embed",
                            path)
    size = f"-{SIZES[embed_dim][0]}" if embed_dim in SIZES else f" ({embed_dim} wide)"
    moe = " with ViTPose+ expert 0 folded" if any(_EXPERT.match(k) for k in raw) else ""
    name = {"mmpose": "mmpose ViTPose", "mmpose1": "mmpose 1.x ViTPose", "transformers": "transformers VitPose"}
    where = "" if layout != "transformers" else " (folder)" if path.is_dir() else " (safetensors file)"
    ignored = sorted(k for k in state if not k.startswith(("backbone.", "keypoint_head.")) or k == "backbone.cls_token")
    state = {k: v for k, v in state.items() if k not in ignored}
    p = PublishedViTPose(
        state=state, embed_dim=embed_dim, depth=depth, num_heads=int(heads), head=head, deconv_channels=deconv,
        num_joints=num_joints, image_size=image_size, heatmap_size=(4 * grid[0], 4 * grid[1]),
        source=f"{name[layout]}{size} {head}{moe}{where}", patch_size=patch, mlp_ratio=mlp_ratio,
        qkv_bias="backbone.blocks.0.attn.qkv.bias" in state or depth == 0,
        layer_norm_eps=hf["eps"] if hf is not None else HF_LN_EPS if layout == "transformers" else LN_EPS,
        ignored=ignored)
    _check_against_model(p, path)
    return p


def config_overrides(p: PublishedViTPose) -> list[str]:
    """``--set`` overrides (on the ``paper`` preset) giving the single-frame network ``p.state`` loads into.

    A published ViTPose predicts COCO's 17 joints (``model.layout=coco``); other joint sets are refused.
    """
    if p.num_joints != 17:
        raise DiffPoseError(f"{p.source} predicts {p.num_joints} joints; diffpose's joint layouts have 17 (COCO)")
    return ["model.layout=coco"] + _network_overrides(p)


def _network_overrides(p: PublishedViTPose) -> list[str]:
    out = ["model.kind=baseline", f"model.head={p.head}", f"model.num_joints={p.num_joints}",
           "model.backbone.stem=patch", f"model.backbone.patch_size={p.patch_size}",
           f"model.backbone.patch_padding={PATCH_PADDING}", f"model.backbone.embed_dim={p.embed_dim}",
           f"model.backbone.depth={p.depth}", f"model.backbone.num_heads={p.num_heads}",
           f"model.backbone.mlp_ratio={p.mlp_ratio}", f"model.backbone.qkv_bias={str(p.qkv_bias).lower()}",
           f"model.backbone.image_size=[{p.image_size[0]}, {p.image_size[1]}]",
           f"model.heatmap_size=[{p.heatmap_size[0]}, {p.heatmap_size[1]}]", f"data.box_enlarge={BOX_ENLARGE}"]
    if p.deconv_channels is not None:
        out.append(f"model.baseline_deconv_channels={p.deconv_channels}")
    return out


def load_published_vitpose(net: nn.Module, p: PublishedViTPose) -> None:
    """Load ``p.state`` into ``net`` (strict) and give the backbone's LayerNorms the source's epsilon."""
    net.load_state_dict(p.state, strict=True)
    for m in net.backbone.modules():
        if isinstance(m, nn.LayerNorm):
            m.eps = p.layer_norm_eps


def _check_against_model(p: PublishedViTPose, path: Path) -> None:
    """Raise unless ``p.state`` has exactly the keys and shapes of the network :func:`config_overrides` gives."""
    try:
        cfg = load_config("paper", overrides=_network_overrides(p)).model
        with torch.device("meta"):
            own = {k: tuple(v.shape) for k, v in BaselineNet.from_config(cfg).state_dict().items()}
    except (DiffPoseError, ValueError) as e:
        raise DiffPoseError(f"the weights describe a network diffpose cannot build: {_first_line(e)}", path) from None
    got = {k: tuple(v.shape) for k, v in p.state.items()}
    problems = [f"missing {k}" for k in own if k not in got] + [f"unexpected {k}" for k in got if k not in own]
    problems += [f"{k}: file {got[k]} vs model {own[k]}" for k in own if k in got and got[k] != own[k]]
    if problems:
        raise DiffPoseError(f"inconsistent {p.source} weights ({len(problems)} problems): " + "; ".join(problems[:3]),
                            path)
