"""Many pictures at once: :func:`encode_many` / :func:`decode_many`, a thread pool over one shared Encoder /
Decoder.

Threads, not processes: ONNX Runtime's ``run`` and every C++ core call release the GIL, so pictures in flight
overlap on the cores while sharing one set of sessions (one copy of the weights).  Each picture still runs its
own stages in order, with ``inner_threads`` threads for the C++ pool and ORT (default: the cores divided by the
pictures in flight), so the machine is not oversubscribed.  Results come back in input order and are
bit-identical to serial calls (tests/test_parallel.py): no stage's output depends on the thread count, and no
state is shared between pictures except the read-only model and the sessions.

:func:`imap` is the engine: an ordered, bounded map over any callable (the CLI's ``--jobs`` runs its per-file
load / encode / write through it with one shared Encoder / Decoder).
"""
from __future__ import annotations

import collections
import os
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

__all__ = ["encode_many", "decode_many", "imap", "worker_threads"]

T = TypeVar("T")
R = TypeVar("R")


def worker_threads(threads: int | None) -> int:
    """Pictures in flight: ``threads`` (None or 0: the hardware threads)."""
    from . import _core

    if threads is None or threads == 0:
        return max(1, _core.hardware_threads())
    if isinstance(threads, bool) or int(threads) != threads or threads < 0:
        raise ValueError(f"threads must be None or an integer >= 0, got {threads!r}")
    return int(threads)


def _inner_threads(workers: int, inner_threads: int | None) -> int:
    from . import _core

    if inner_threads is not None:
        return int(inner_threads)
    return max(1, _core.hardware_threads() // workers)


def _name_index(e: BaseException, index: int, what: str) -> BaseException:
    """The exception of item ``index``, its message prefixed with "<what> <index>: " (its type and fields kept);
    ``e.index`` = index."""
    e.index = index  # type: ignore[attr-defined]
    if len(e.args) == 1 and isinstance(e.args[0], str):
        e.args = (f"{what} {index}: {e.args[0]}",)
    elif hasattr(e, "add_note"):  # OSError(errno, text, filename) and the like: a note keeps str(e) intact
        e.add_note(f"({what} {index})")
    return e


def imap(fn: Callable[[T], R], items: Iterable[T], threads: int | None = None, *, what: str = "item",
         return_exceptions: bool = False) -> Generator[R | BaseException, None, None]:
    """``fn(item)`` for every item, on ``threads`` threads (None or 0: the hardware threads; 1: in this thread),
    yielded in input order as soon as each is ready.  At most 2·threads items are in flight (a long input is
    not loaded at once).  A failure raises the exception of the first failing item in input order, its
    message prefixed "<what> <index>: " (``e.index`` too), after the items in flight have ended; the rest
    are not started.  ``return_exceptions=True``: failures are yielded in their place instead."""
    workers = worker_threads(threads)
    if workers == 1:
        for i, item in enumerate(items):
            try:
                yield fn(item)
            except Exception as e:  # noqa: BLE001 — re-raised (or handed back) with the index
                if not return_exceptions:
                    raise _name_index(e, i, what) from None
                yield _name_index(e, i, what)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jpegai_fast") as pool:
        pending: collections.deque[tuple[int, Future]] = collections.deque()
        try:
            for i, item in enumerate(items):
                pending.append((i, pool.submit(fn, item)))
                if len(pending) >= 2 * workers:
                    yield _result(*pending.popleft(), what, return_exceptions)
            while pending:
                yield _result(*pending.popleft(), what, return_exceptions)
        finally:
            for _, f in pending:  # a failure (or the caller stopped early): do not start what is queued
                f.cancel()


def _result(index: int, f: Future, what: str, return_exceptions: bool):
    try:
        return f.result()
    except Exception as e:  # noqa: BLE001 — re-raised (or handed back) with the index
        if not return_exceptions:
            raise _name_index(e, index, what) from None
        return _name_index(e, index, what)


def encode_many(images: Iterable[NDArray[np.uint8]], threads: int | None = None, *,
                model: str | os.PathLike[str] | Any = "default", device: str = "cpu",
                inner_threads: int | None = None, encoder: Any = None, **encode_kwargs) -> list[bytes]:
    """Encode every picture with one shared :class:`Encoder`, ``threads`` pictures at a time (None or 0: the
    hardware threads) -> the codestreams, in input order, byte-identical to ``encode(image, **encode_kwargs)``
    one by one.  ``encode_kwargs``: as :func:`jpegai_fast.encode` (``bpp``, ``quality``, ``rate_point``,
    ``operating_point``, ``substreams``, tiling, ``strict``...); ``model="default"`` with ``bpp`` picks the
    shipped model measured best at that rate and with ``quality`` the default ladder's model, as ``encode`` does.
    ``inner_threads``: the threads each picture's
    stages use (default: the cores divided by ``threads``).  ``encoder``: an existing Encoder to use instead
    (its own threads).  An error is raised as the picture's own exception, its message starting
    "image <index>: "."""
    from .encoder import Encoder, default_quality
    from .model import model_for_bpp

    workers = worker_threads(threads)
    if encoder is None:
        op = encode_kwargs.get("operating_point", "bop")
        if isinstance(model, str) and model == "default" and encode_kwargs.get("bpp") is not None:
            model = model_for_bpp(float(encode_kwargs["bpp"]), op)
        elif isinstance(model, str) and model == "default" and encode_kwargs.get("quality") is not None \
                and encode_kwargs.get("rate_point") is None:
            model, quality = default_quality(encode_kwargs["quality"], op)  # as encode() picks it
            encode_kwargs = {**encode_kwargs, "quality": quality}
        encoder = Encoder(model, device=device, threads=_inner_threads(workers, inner_threads))
    enc = encoder
    return cast("list[bytes]", list(imap(lambda rgb: enc.encode(rgb, **encode_kwargs), images, workers,
                                         what="image")))


def decode_many(datas: Iterable[Any], threads: int | None = None, *, model: str | os.PathLike[str] | Any = "default",
                operating_point: str | None = "bop", device: str = "cpu", inner_threads: int | None = None,
                decoder: Any = None, **decoder_kwargs) -> list[Any]:
    """Decode every codestream (bytes or paths) with one shared :class:`Decoder`, ``threads`` at a time (None or
    0: the hardware threads) -> uint8 RGB arrays in input order, identical to ``decode(data)`` one by one.
    ``model="default"``: each stream's own shipped model (its header's id).  ``decoder_kwargs``: the other
    :class:`Decoder` arguments (``max_pixels``, ``tile_size``, ``tile_overlap``).  ``inner_threads``: as
    :func:`encode_many`.  ``decoder``: an existing Decoder to use instead.  An error is raised as the stream's
    own exception, its message starting "stream <index>: "."""
    from .decoder import Decoder

    workers = worker_threads(threads)
    if decoder is None:
        decoder = Decoder(model, operating_point=operating_point, device=device,
                          threads=_inner_threads(workers, inner_threads), **decoder_kwargs)
    dec = decoder
    return list(imap(dec.decode, datas, workers, what="stream"))
