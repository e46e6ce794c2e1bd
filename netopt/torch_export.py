"""Import a ``torch.nn.Module`` into netopt through ONNX export.

:func:`from_torch` exports the module with ``torch.onnx.export`` into memory and
reads the result with :func:`netopt.load`, so a torch module goes through exactly
the same frontend, passes and checks as an ONNX file: there is one import path,
and the ONNX bytes kept on the :class:`~netopt.Network` let results be re-checked
in onnxruntime.

Two exporters exist in torch 2.x:

* ``"dynamo"`` (the default of torch >= 2.9, ``dynamo=True``): traces with
  ``torch.export`` and translates with onnxscript; it folds BatchNorm into the
  preceding layer and emits recent opsets.
* ``"torchscript"`` (``dynamo=False``): the legacy tracer; faster to run, and the
  fallback when ``torch.export`` cannot trace a module.

Both are run quietly: the exporters' progress messages, warnings and log records
are silenced for the duration of the call only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from netopt.errors import InputError, OnnxImportError, SolverUnavailableError
from netopt.network import Network, load

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger("netopt")

__all__ = ["from_torch", "EXPORTERS", "as_networks", "NetworkLike"]

#: exporter name -> the ``dynamo`` flag of ``torch.onnx.export``
EXPORTERS: dict[str, bool] = {"default": True, "dynamo": True, "torchscript": False}

# logger trees the exporters write to: progress, "torchvision is not installed" notes, and
# on a failed trace whole tracebacks (the exception itself is chained to our error instead)
_CHATTY_LOGGERS = ("torch", "onnxscript", "onnx_ir")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' warnings and log records for one export call.

    Torch gives many of its loggers their own handler with ``propagate=False``,
    so raising the level of the tree roots (and of descendants that set a level
    of their own) is what mutes them; everything is restored on exit. With
    netopt's logger at DEBUG nothing is muted, to help debugging an export.
    """
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    subtree = tuple(f"{r}." for r in _CHATTY_LOGGERS)
    loggers = [logging.getLogger(r) for r in _CHATTY_LOGGERS] + [
        lg
        for name, lg in list(logging.root.manager.loggerDict.items())
        if isinstance(lg, logging.Logger)
        and name.startswith(subtree)
        and lg.level != logging.NOTSET
    ]
    saved = [(lg, lg.level) for lg in loggers]
    for lg, _ in saved:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _describe(e: BaseException) -> str:
    """First line of an exception, plus that of its root cause (the exporters wrap theirs)."""

    def line(x: BaseException) -> str:
        text = _ANSI.sub("", str(x)).strip()
        return f"{type(x).__name__}: {text.splitlines()[0]}" if text else type(x).__name__

    root, seen = e, {id(e)}
    while root.__cause__ is not None and id(root.__cause__) not in seen:
        root = root.__cause__
        seen.add(id(root))
    return line(e) if root is e else f"{line(e)}; caused by {line(root)}"


def _first_sample(x: Any) -> Any:
    """Cut a batched example tensor to one sample: netopt works per sample (batch 1)."""
    import torch

    if isinstance(x, torch.Tensor) and x.dim() >= 2 and x.shape[0] > 1:
        return x[:1]
    return x


def _export(
    module: torch.nn.Module,
    args: tuple[Any, ...],
    dynamo: bool,
    opset: int | None,
    input_names: Sequence[str] | None,
) -> bytes:
    """Run ``torch.onnx.export`` and return the serialized model."""
    import torch

    names = list(input_names) if input_names is not None else None
    with _quiet(), torch.no_grad():
        if dynamo:
            # f=None returns an ONNXProgram held in memory; report/verify/dump stay off,
            # so nothing is written to disk and nothing is fetched
            prog = torch.onnx.export(
                module,
                args,
                None,
                dynamo=True,
                verbose=False,
                opset_version=opset,
                input_names=names,
                external_data=False,
                report=False,
                verify=False,
                dump_exported_program=False,
            )
            if prog is None:  # pragma: no cover - the documented return value
                raise RuntimeError("torch.onnx.export(dynamo=True) returned no ONNXProgram")
            proto = prog.model_proto
            got = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
            if opset is not None and got != opset:
                # the dynamo exporter writes opset >= 18 and says so only in a warning,
                # which _quiet has muted
                log.warning(
                    "the dynamo ONNX exporter wrote opset %s instead of the requested %d; "
                    "use exporter='torchscript' for older opsets",
                    got,
                    opset,
                )
            return proto.SerializeToString()
        buf = io.BytesIO()
        torch.onnx.export(
            module,
            args,
            buf,
            dynamo=False,
            verbose=False,
            opset_version=opset,
            input_names=names,
        )
        return buf.getvalue()


def from_torch(
    module: torch.nn.Module,
    example_input: Any,
    *,
    exporter: str = "default",
    opset: int | None = None,
    input_names: Sequence[str] | None = None,
    **load_kwargs: Any,
) -> Network:
    """Import a torch module by exporting it to ONNX in memory.

    Parameters
    ----------
    module : torch.nn.Module
        The network. It is exported in eval mode (BatchNorm with running
        statistics, Dropout off); its training mode is restored afterwards.
    example_input : torch.Tensor or tuple of torch.Tensor
        An example input (one tensor per ``forward`` argument). A batched tensor
        ``(B, ...)`` with ``B > 1`` is cut to its first sample: netopt works on one
        sample, and the ONNX model gets a batch dimension of 1.
    exporter : {"default", "dynamo", "torchscript"}
        ``"default"`` and ``"dynamo"`` use ``torch.onnx.export(dynamo=True)`` (torch's
        default, needs onnxscript); ``"torchscript"`` the legacy ``dynamo=False``.
    opset : int, optional
        ONNX opset to export to (default: the exporter's choice).
    input_names : sequence of str, optional
        Names of the ONNX graph inputs.
    **load_kwargs
        Passed to :func:`netopt.load` (``input_shapes``, ``passes``).

    Returns
    -------
    Network
        The imported network; ``net.onnx_bytes`` holds the exported model.

    Raises
    ------
    SolverUnavailableError
        If torch (or onnxscript, for the dynamo exporter) is not installed.
    OnnxImportError
        If the export fails (naming the module class and the other exporter), or
        the exported model cannot be read.
    UnsupportedOpError
        If the exported model holds ONNX ops netopt cannot import.
    ValueError
        On an unknown ``exporter``.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter={exporter!r}; choose one of {sorted(EXPORTERS)}")
    try:
        import torch
    except ImportError as e:
        raise SolverUnavailableError(
            "netopt.from_torch needs torch; install its CPU wheel with "
            "`pip install torch==2.13.0` (a bare `pip install torch` may pull GBs of CUDA "
            "packages), or export the module to ONNX elsewhere and use netopt.load"
        ) from e
    dynamo = EXPORTERS[exporter]
    if dynamo:
        try:
            import onnxscript  # noqa: F401
        except ImportError as e:
            raise SolverUnavailableError(
                "the dynamo ONNX exporter of torch needs onnxscript: `pip install onnxscript`, "
                "or call from_torch(..., exporter='torchscript')"
            ) from e
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch takes a torch.nn.Module, got {type(module).__name__}")

    args = tuple(example_input) if isinstance(example_input, list | tuple) else (example_input,)
    args = tuple(_first_sample(a) for a in args)
    cls = type(module).__name__
    other = "torchscript" if dynamo else "dynamo"
    # eval mode for the export (BatchNorm running statistics, no Dropout); every
    # submodule's own flag is restored afterwards, so a mixed train/eval state survives
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        data = _export(module, args, dynamo, opset, input_names)
    except Exception as e:
        raise OnnxImportError(
            f"torch module {cls}: the {'dynamo' if dynamo else 'torchscript'} ONNX exporter "
            f"failed ({_describe(e)}); try from_torch(..., exporter='{other}'), or export the "
            "module to ONNX yourself and use netopt.load"
        ) from e
    finally:
        for m, training in modes:
            m.training = training
    log.debug("exported %s with the %s exporter: %d bytes", cls, exporter, len(data))

    return load(data, **load_kwargs)


# ------------------------------------------------------------------ sequences of networks
#: what :func:`as_networks` takes: a Network, an ONNX path or bytes, or a torch.nn.Module (Any)
NetworkLike = Network | str | os.PathLike | Any


def _is_torch_module(obj: Any) -> bool:
    # without importing torch when the caller did not (``import netopt`` stays torch-free)
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def as_networks(
    networks: Sequence[NetworkLike],
    *,
    example_input: Any = None,
    exporter: str = "torchscript",
) -> list[Network]:
    """Turn a sequence of Networks, ONNX paths and torch modules into Networks (a training path).

    Parameters
    ----------
    networks : sequence
        Each a :class:`~netopt.Network`, a path to an ONNX file, ONNX bytes, or a
        ``torch.nn.Module``.
    example_input : torch.Tensor, optional
        For torch modules: the example input of the ONNX export. Default: a zero tensor of the
        input shape of the first non-torch entry, else of ``in_features`` of the module's first
        ``Linear`` layer.
    exporter : str
        The exporter :func:`netopt.from_torch` uses for torch modules. ``"torchscript"`` by
        default: a sequence holds tens of checkpoints and it is ~100x faster per module than
        the dynamo exporter, with the same IR for the MLP/conv generators surfing is used on.

    Returns
    -------
    list of Network

    Raises
    ------
    InputError
        If the sequence is empty, or an entry is none of the accepted kinds.
    """
    items = list(networks)
    if not items:
        raise InputError("surfing needs at least one network (the sequence is empty)")
    out: list[Network | None] = []
    for i, n in enumerate(items):
        if isinstance(n, Network):
            out.append(n)
        elif isinstance(n, str | os.PathLike | bytes):
            out.append(load(n))
        elif _is_torch_module(n):
            out.append(None)  # converted below, once an example input is known
        else:
            raise InputError(
                f"networks[{i}] is a {type(n).__name__}; pass a netopt.Network, the path of an "
                "ONNX file, or a torch.nn.Module"
            )
    if any(o is None for o in out):
        import torch

        if example_input is None:
            known = next((o for o in out if o is not None), None)
            # the export traces the module, so the example must have its parameters' dtype
            p0 = next(items[out.index(None)].parameters(), None)
            dt = p0.dtype if p0 is not None else torch.float32
            # (and its device: a module on a GPU traces on it)
            dev = p0.device if p0 is not None else None
            if known is not None:
                example_input = torch.zeros(1, *known.input_shape, dtype=dt, device=dev)
            else:
                lin = next(
                    (m for m in items[0].modules() if isinstance(m, torch.nn.Linear)),
                    None,
                )
                if lin is None:
                    raise InputError(
                        "networks[0] is a torch module without a Linear layer: pass "
                        "example_input= for the ONNX export"
                    )
                example_input = torch.zeros(1, lin.in_features, dtype=dt, device=dev)
        out = [
            o if o is not None else from_torch(items[i], example_input, exporter=exporter)
            for i, o in enumerate(out)
        ]
    return out  # type: ignore[return-value]
