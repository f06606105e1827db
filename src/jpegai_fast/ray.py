"""Ray Data pipelines: encode / decode datasets and transcode folders on a Ray cluster (extra ``[ray]``).

    import ray, jpegai_fast.ray as jray
    ray.init()                                                    # or ray.init(address="auto") on a cluster
    jray.transcode_files("photos/", "jai/", quality=60)           # images -> .jai, one file per image
    jray.transcode_files("jai/", "png/", to="png")                # .jai -> PNG
    ds = ray.data.read_images("photos/", mode="RGB", include_paths=True)
    ds = jray.encode_dataset(ds, bpp=0.25)                        # adds a "jai" column (bytes)
    ds = jray.decode_dataset(ds, column="jai")                    # adds an "image" column (uint8 RGB)

Files are read with Ray Data's readers (``read_binary_files``; ``read_images`` for datasets of pictures) and
coded by ``map_batches`` with a callable class: an actor pool of ``concurrency`` actors, ``num_cpus`` each,
every actor holding one Encoder / Decoder (its ONNX Runtime sessions made once, ``threads`` = its CPUs) for all
the batches it gets.  Outputs are written by a Ray Datasink, one file per input named after it (``<stem>.jai`` /
``<stem>.png``), so ``out_dir`` must be a folder every node can write (a shared file system on a cluster).  The
bytes are those of ``jpegai_fast.encode`` on one machine (tests/test_ray.py): no stage depends on the thread
count.  A cluster recipe: docs/pipelines.md.
"""
from __future__ import annotations

import io
import os
import pathlib
from collections.abc import Iterable
from typing import Any

import numpy as np

try:
    import ray
    import ray.data
    from ray.data import Datasink
    from ray.data.block import BlockAccessor
except ImportError as e:  # pragma: no cover - the extra is optional
    raise ImportError("jpegai_fast.ray needs Ray Data: pip install 'jpegai_fast[ray]'") from e

__all__ = ["EncodeBatch", "DecodeBatch", "encode_dataset", "decode_dataset", "transcode_files", "FileSink"]

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp"}


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class EncodeBatch:
    """``map_batches`` callable class: one :class:`jpegai_fast.Encoder` per actor.  Reads ``column`` (uint8 RGB
    arrays, as ``ray.data.read_images(mode="RGB")`` gives; or, with ``from_files=True``, the encoded file
    bytes of ``read_binary_files``, loaded as the CLI loads them: EXIF orientation, 16-bit scaling) and adds
    ``output_column`` (the codestreams, bytes); ``drop_input`` removes ``column``."""

    def __init__(self, column: str = "image", output_column: str = "jai", from_files: bool = False,
                 drop_input: bool = False, model: str = "default", device: str = "cpu", threads: int | None = 1,
                 alpha: str = "refuse", **encode_kwargs):
        from .encoder import Encoder
        from .model import model_for_bpp

        if isinstance(model, str) and model == "default" and encode_kwargs.get("bpp") is not None:
            model = model_for_bpp(float(encode_kwargs["bpp"]), encode_kwargs.get("operating_point", "bop"))
        self.encoder = Encoder(model, device=device, threads=threads)
        self.column, self.output_column = column, output_column
        self.from_files, self.drop_input = from_files, drop_input
        self.alpha, self.encode_kwargs = alpha, encode_kwargs

    def _picture(self, value) -> np.ndarray:
        if not self.from_files:
            return np.ascontiguousarray(value, dtype=np.uint8)
        from PIL import Image

        from .images import to_rgb8

        with Image.open(io.BytesIO(bytes(value))) as im:
            return to_rgb8(im, self.alpha)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        streams = [self.encoder.encode(self._picture(v), **self.encode_kwargs) for v in batch[self.column]]
        out = {k: v for k, v in batch.items() if not (self.drop_input and k == self.column)}
        out[self.output_column] = _objects(streams)
        return out


class DecodeBatch:
    """``map_batches`` callable class: one :class:`jpegai_fast.Decoder` per actor.  Reads ``column`` (codestream
    bytes) and adds ``output_column``: uint8 RGB arrays, or with ``file_format`` (e.g. "png") the encoded image
    file bytes (Pillow).  ``drop_input`` removes ``column``."""

    def __init__(self, column: str = "bytes", output_column: str = "image", file_format: str | None = None,
                 drop_input: bool = False, model: str = "default", operating_point: str | None = "bop",
                 device: str = "cpu", threads: int | None = 1, **decoder_kwargs):
        from .decoder import Decoder

        self.decoder = Decoder(model, operating_point=operating_point, device=device, threads=threads,
                               **decoder_kwargs)
        self.column, self.output_column, self.drop_input = column, output_column, drop_input
        self.file_format = file_format

    def _output(self, rgb: np.ndarray):
        if self.file_format is None:
            return rgb
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=self.file_format)
        return buf.getvalue()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pictures = [self._output(self.decoder.decode(bytes(v))) for v in batch[self.column]]
        out = {k: v for k, v in batch.items() if not (self.drop_input and k == self.column)}
        out[self.output_column] = _objects(pictures)
        return out


def _pool_args(concurrency: int | tuple[int, int] | None, num_cpus: float, spare: float = 1) -> dict[str, Any]:
    """map_batches arguments of an actor pool: ``concurrency`` actors, or (min, max) for an autoscaling pool
    (default: as many as the cluster's CPUs less ``spare`` hold at ``num_cpus`` each, at least one),
    ``num_cpus`` CPUs reserved per actor.  An actor holds its CPUs for the whole run: a pool that holds every
    CPU starves the operators that feed it (read tasks reserve 1 CPU each by default) and the run stalls."""
    if num_cpus <= 0:
        raise ValueError(f"num_cpus must be positive, got {num_cpus!r}")
    if concurrency is None:
        if not ray.is_initialized():
            ray.init()
        concurrency = max(1, int((ray.cluster_resources().get("CPU", 1) - spare) // num_cpus))
    pool = (ray.data.ActorPoolStrategy(size=concurrency) if isinstance(concurrency, int)
            else ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1]))
    return {"compute": pool, "num_cpus": num_cpus, "batch_format": "numpy"}


def _actor_threads(threads: int | None, num_cpus: float) -> int:
    return int(threads) if threads is not None else max(1, int(num_cpus))


def encode_dataset(ds, *, column: str = "image", output_column: str = "jai", model: str = "default",
                   device: str = "cpu", threads: int | None = None, concurrency: int | tuple[int, int] | None = None,
                   num_cpus: float = 1, batch_size: int = 4, **encode_kwargs):
    """A Ray Dataset with a column of uint8 RGB pictures (``ray.data.read_images(mode="RGB")``) -> the same rows
    plus ``output_column``: their codestreams (bytes), by an actor pool of :class:`EncodeBatch`.
    ``encode_kwargs``: as :func:`jpegai_fast.encode` (``bpp``, ``quality``, ``rate_point``, ``operating_point``...).
    ``threads``: each actor's Encoder threads (default: ``num_cpus``); ``concurrency``: actors, default the
    cluster's CPUs less one (for the operators feeding the pool) over ``num_cpus``.  Lazy, as every Ray Data
    transform."""
    return ds.map_batches(EncodeBatch, batch_size=batch_size, **_pool_args(concurrency, num_cpus),
                          fn_constructor_kwargs={"column": column, "output_column": output_column, "model": model,
                                                 "device": device, "threads": _actor_threads(threads, num_cpus),
                                                 **encode_kwargs})


def decode_dataset(ds, *, column: str = "bytes", output_column: str = "image", model: str = "default",
                   operating_point: str | None = "bop", device: str = "cpu", threads: int | None = None,
                   concurrency: int | tuple[int, int] | None = None, num_cpus: float = 1, batch_size: int = 4,
                   **decoder_kwargs):
    """A Ray Dataset with a column of codestreams (``ray.data.read_binary_files`` gives "bytes") -> the same rows
    plus ``output_column``: uint8 RGB arrays, by an actor pool of :class:`DecodeBatch` (``model="default"``:
    each stream's own shipped model).  ``decoder_kwargs``: ``max_pixels``, ``tile_size``, ``tile_overlap``."""
    return ds.map_batches(DecodeBatch, batch_size=batch_size, **_pool_args(concurrency, num_cpus),
                          fn_constructor_kwargs={"column": column, "output_column": output_column, "model": model,
                                                 "operating_point": operating_point, "device": device,
                                                 "threads": _actor_threads(threads, num_cpus), **decoder_kwargs})


class FileSink(Datasink):
    """A Ray Datasink: writes each row's ``column`` (bytes) to ``out_dir/<stem of the row's "path"><ext>``; the
    written paths are in :attr:`written` on the driver once ``ds.write_datasink(sink)`` has returned."""

    def __init__(self, out_dir: str | os.PathLike[str], column: str, ext: str):
        self.out_dir, self.column, self.ext = str(out_dir), column, ext
        self.written: list[str] = []

    def on_write_start(self, *args, **kwargs) -> None:
        pathlib.Path(self.out_dir).mkdir(parents=True, exist_ok=True)

    def write(self, blocks, ctx) -> list[str]:
        paths = []
        for block in blocks:
            for row in BlockAccessor.for_block(block).iter_rows(public_row_format=True):
                dst = pathlib.Path(self.out_dir) / (pathlib.PurePath(str(row["path"])).stem + self.ext)
                dst.write_bytes(bytes(row[self.column]))
                paths.append(str(dst))
        return paths

    def on_write_complete(self, write_result) -> None:
        self.written = sorted(p for task in write_result.write_returns for p in task)


def _input_files(inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], exts: set[str]) -> list[str]:
    if isinstance(inputs, (str, os.PathLike)):
        p = pathlib.Path(inputs)
        if p.is_dir():
            files = sorted(str(f) for f in p.iterdir() if f.is_file() and f.suffix.lower() in exts)
            if not files:
                raise FileNotFoundError(f"{p}: no {'/'.join(sorted(exts))} files")
            return files
        return [str(p)]
    return [str(f) for f in inputs]


def transcode_files(inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                    *, to: str = "jai", model: str = "default", device: str = "cpu", threads: int | None = None,
                    concurrency: int | tuple[int, int] | None = None, num_cpus: float = 1, batch_size: int = 4,
                    operating_point: str | None = "bop", alpha: str = "refuse", **encode_kwargs) -> list[str]:
    """Image files (a folder: every image inside; or a list of paths) -> ``out_dir/<stem>.jai`` with
    ``to="jai"`` (``encode_kwargs`` as :func:`jpegai_fast.encode`; ``operating_point``: the header's); or .jai
    files -> ``out_dir/<stem>.<to>`` images (``to="png"``, or any Pillow format name; ``operating_point``:
    the synthesis, None = the stream's).  Read by ``ray.data.read_binary_files``, coded by an
    actor pool (``concurrency`` actors of ``num_cpus`` CPUs, each with one Encoder / Decoder of ``threads``
    threads, default ``num_cpus``), written by a Ray Datasink.  Returns the written paths, sorted; runs now."""
    encoding = to.lower() == "jai"
    files = _input_files(inputs, IMAGE_EXTS if encoding else {".jai"})
    pool = _pool_args(concurrency, num_cpus, spare=0)
    # reading and writing files is I/O: their tasks reserve no CPU, so a pool that holds every CPU of the cluster
    # (the default) cannot starve them (with 1 CPU each, 2 actors on a 2-CPU machine never got their input)
    ds = ray.data.read_binary_files(files, include_paths=True, num_cpus=0)
    if encoding:
        encode_kwargs["operating_point"] = operating_point
        ds = ds.map_batches(EncodeBatch, batch_size=batch_size, **pool,
                            fn_constructor_kwargs={"column": "bytes", "output_column": "out", "from_files": True,
                                                   "drop_input": True, "model": model, "device": device,
                                                   "threads": _actor_threads(threads, num_cpus), "alpha": alpha,
                                                   **encode_kwargs})
        ext = ".jai"
    else:
        if encode_kwargs:
            raise TypeError(f"decoding takes no encoder arguments: {sorted(encode_kwargs)}")
        ds = ds.map_batches(DecodeBatch, batch_size=batch_size, **pool,
                            fn_constructor_kwargs={"column": "bytes", "output_column": "out", "file_format": to,
                                                   "drop_input": True, "model": model,
                                                   "operating_point": operating_point, "device": device,
                                                   "threads": _actor_threads(threads, num_cpus)})
        ext = "." + to.lower()
    sink = FileSink(out_dir, "out", ext)
    ds.write_datasink(sink, ray_remote_args={"num_cpus": 0})
    return sink.written
