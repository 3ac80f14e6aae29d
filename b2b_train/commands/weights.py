"""``b2b-train weights``: list, inspect, convert and fetch network weights.

Nothing here downloads unless the user runs ``weights fetch``; a download is accepted only when its
SHA-256 matches the one recorded for the network (or given with ``--sha256``), and it is moved into
the cache atomically, so a failed or forged download never leaves a file where loaders look.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import click

from ..errors import B2BError, CheckpointError
from ..hashing import file_sha256

__all__ = ["weights", "count_params", "fits", "verify_digest", "recorded_digest", "download"]

_HEX = re.compile(r"^[0-9a-fA-F]+$")


def _registry():
    from .. import nets  # noqa: F401  (fills the registry)
    from ..nets import registry

    return registry


def _console():
    from rich.console import Console

    return Console()


def count_params(spec) -> int | None:
    """Parameters of ``spec``'s default configuration, built on the meta device (no memory, fast)."""
    import torch

    try:
        with torch.device("meta"):
            net = spec.build()
        return sum(p.numel() for p in net.parameters())
    except Exception:  # a builder that does real work at construction: fall back to the record
        return spec.published_params


def _shapes_of(spec, kwargs: dict | None = None) -> dict[str, tuple[int, ...]] | None:
    import torch

    try:
        with torch.device("meta"):
            net = spec.build(**(kwargs or {}))
        return {k: tuple(v.shape) for k, v in net.state_dict().items()}
    except Exception:
        return None


def fits(state: dict, spec, kwargs: dict | None = None) -> tuple[bool, int, str]:
    """Does ``state`` (unwrapped, ``module.`` stripped) load into ``spec`` strictly after its remap?

    ``kwargs`` override the registered configuration (as stored in our files' metadata).
    Returns ``(fits, mismatches, summary)``: mismatches counts missing + unexpected + mis-shaped keys.
    """
    own = _shapes_of(spec, kwargs)
    if own is None:
        return False, sys.maxsize, "cannot build"
    st = dict(state)
    if spec.remap is not None and not set(st) <= set(own):
        try:
            st = spec.remap(st)
        except Exception as e:  # a remap that chokes on foreign keys simply does not fit
            return False, sys.maxsize, f"remap failed ({type(e).__name__})"
    missing = [k for k in own if k not in st]
    unexpected = [k for k in st if k not in own]
    shapes = [k for k in own if k in st and tuple(st[k].shape) != own[k]]
    n = len(missing) + len(unexpected) + len(shapes)
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} wrong shapes (e.g. {k} {tuple(st[k].shape)} vs {own[k]})")
    return n == 0, n, "; ".join(parts) or "fits"


def verify_digest(actual_sha256: str, expected: str) -> bool:
    """True when ``expected`` is the full SHA-256 or a prefix of it of at least 8 hex digits
    (torchvision names files ``name-<first 8 hex of sha256>.pth``)."""
    e = expected.strip().lower()
    if len(e) < 8 or not _HEX.match(e):
        raise B2BError(f"not a SHA-256 (or 8+ hex digit prefix): {expected!r}")
    return actual_sha256.lower().startswith(e)


def download(url: str, dest_dir: Path, name: str, expected: str, progress: bool = True) -> tuple[Path, str, int]:
    """Stream ``url`` into a temporary file in ``dest_dir`` while hashing it.

    Returns ``(temporary path, sha256, bytes)`` when the digest matches ``expected``; otherwise removes
    the temporary file and raises :class:`CheckpointError`. The caller moves the file into place.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    suffix = Path(name).suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=f".part{suffix}", dir=dest_dir)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            req = urllib.request.Request(url, headers={"User-Agent": "b2b-train"})
            try:
                resp = urllib.request.urlopen(req, timeout=60)
            except (urllib.error.URLError, OSError, ValueError) as e:
                raise CheckpointError(f"cannot download {url}: {getattr(e, 'reason', e)}") from None
            with resp:
                length = resp.headers.get("Content-Length") if getattr(resp, "headers", None) else None
                total = int(length) if length and str(length).isdigit() else None
                from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                           TransferSpeedColumn)

                bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                               TransferSpeedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                               disable=not progress or not sys.stderr.isatty())
                with bar:
                    task = bar.add_task(name, total=total)
                    while True:
                        try:
                            chunk = resp.read(1 << 20)
                        except OSError as e:
                            raise CheckpointError(f"download of {url} failed after {size} bytes: {e}") from None
                        if not chunk:
                            break
                        f.write(chunk)
                        h.update(chunk)
                        size += len(chunk)
                        bar.advance(task, len(chunk))
            f.flush()
            os.fsync(f.fileno())
        digest = h.hexdigest()
        if not verify_digest(digest, expected):
            raise CheckpointError(
                f"checksum mismatch for {url}: expected {expected.lower()}, got {digest} ({size} bytes); nothing installed"
            )
        return tmp, digest, size
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_HUB_NAME = re.compile(r"-([0-9a-f]{8,64})\.(pth|pt|pkl|safetensors)$")


def recorded_digest(spec, url: str | None = None) -> str | None:
    """The checksum known for ``spec``: its ``sha256``, else the hex suffix of a torch.hub style file
    name (``vgg16-397923af.pth``: the first 8 hex digits of the file's SHA-256) when the URL ends with it."""
    if spec.sha256:
        return spec.sha256
    url = url or spec.url
    if spec.weights_file and url and urllib.parse.urlparse(url).path.endswith("/" + spec.weights_file):
        m = _HUB_NAME.search(spec.weights_file)
        if m:
            return m.group(1)
    return None


def _fmt_params(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.2f} M"


# ----------------------------------------------------------------------------- commands

@click.group(name="weights", context_settings={"help_option_names": ["-h", "--help"]})
def weights():
    """List, inspect, convert or fetch network weights.

    Weights are looked up by explicit path, then in the cache folder ($B2B_CACHE/weights, default
    ~/.cache/b2b/weights). Official .pth files are read with torch.load(weights_only=True) only.

    \b
    Example:
      b2b-train weights list
      b2b-train weights fetch nafnet-gopro-width32
      b2b-train weights inspect NAFNet-GoPro-width32.pth
    """


@weights.command(name="list")
@click.option("--family", type=click.Choice(["translator", "discriminator", "deblurrer", "features", "bke"]),
              default=None, help="Only networks of this family.")
def list_(family):
    """Registered networks: family, parameters, published weight file and whether it is cached.

    \b
    Example:
      b2b-train weights list --family deblurrer
    """
    from rich.table import Table

    reg = _registry()
    table = Table(title=f"networks (cache: {reg.cache_dir()})")
    for col in ("name", "family", "params", "weights file", "cached", "fetch"):
        table.add_column(col, no_wrap=col in ("name", "params"))
    n_cached = 0
    names = reg.names(family)
    for name in names:
        s = reg.spec(name)
        try:
            found = reg.find_weights(name)
            cached = str(found.name)
            n_cached += 1
        except B2BError:
            cached = "-"
        known = recorded_digest(s)
        fetch = ("yes" if known and len(known) == 64 else "yes (hash prefix)") if s.url and known else (
            "needs --sha256" if s.url else "-")
        table.add_row(name, s.family, _fmt_params(count_params(s)), s.weights_file or "-", cached, fetch)
    con = _console()
    con.print(table)
    con.print(f"{len(names)} networks, {n_cached} with weights in the cache")


@weights.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--keys", "n_keys", type=int, default=12, show_default=True, help="How many keys to list (0: all).")
def inspect(file, n_keys):
    """Summarise a weight file (keys, shapes, parameters) and name the networks it fits.

    Works on official .pth/.pt checkpoints (BasicSR 'params'/'params_ema', 'model', 'state_dict'
    wrappers, 'module.' prefixes) and on b2b safetensors files.

    \b
    Example:
      b2b-train weights inspect ~/Downloads/NAFNet-GoPro-width32.pth
    """
    from ..checkpoint import read_foreign_state_dict, read_meta

    reg = _registry()
    state = read_foreign_state_dict(file)
    meta = {}
    if file.suffix == ".safetensors":
        try:
            meta = read_meta(file)
        except B2BError:
            meta = {}
    con = _console()
    total = sum(v.numel() for v in state.values())
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in state.values()})
    con.print(f"[bold]{file}[/bold]: {len(state)} tensors, {total:,} values ({total / 1e6:.2f} M), dtypes {', '.join(dtypes)}")
    if meta.get("net"):
        con.print(f"b2b file for network {meta['net']} with kwargs {meta.get('net_kwargs', {})}")
    keys = list(state)
    shown = keys if n_keys <= 0 else keys[:n_keys]
    for k in shown:
        click.echo(f"  {k:60s} {tuple(state[k].shape)}")
    if len(shown) < len(keys):
        click.echo(f"  ... and {len(keys) - len(shown)} more (--keys 0 lists all)")
    results = []
    for name in reg.names():
        ok, n, summary = fits(state, reg.spec(name))
        results.append((name, ok, n, summary))
    if meta.get("net") in reg.REGISTRY and meta.get("net_kwargs"):
        label = f"{meta['net']} with {meta['net_kwargs']}"
        ok, n, summary = fits(state, reg.spec(meta["net"]), meta["net_kwargs"])
        results.append((label, ok, n, summary))
    good = [r for r in results if r[1]]
    if good:
        for name, *_ in good:
            click.echo(f"fits: {name}")
    else:
        click.echo("fits: no registered network")
        best = sorted(results, key=lambda r: r[2])[:3]
        for name, _, n, summary in best:
            if n < sys.maxsize:
                click.echo(f"  closest: {name}: {summary}")


@weights.command()
@click.argument("name")
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
def convert(name, src, dst):
    """Convert an official checkpoint for network NAME into a b2b safetensors file.

    The result reloads by itself (its metadata names the network): b2b-train and b2b-stream accept
    it wherever a weight file is asked for.

    \b
    Example:
      b2b-train weights convert nafnet-gopro-width32 NAFNet-GoPro-width32.pth nafnet32.safetensors
    """
    reg = _registry()
    t0 = time.perf_counter()
    net = reg.load(name, src)
    reg.save_network(dst, net, name, {}, source=src.name, source_sha256=file_sha256(src))
    n = sum(p.numel() for p in net.parameters())
    click.echo(f"converted {src} -> {dst}: {name}, {len(net.state_dict())} tensors, {n / 1e6:.2f} M params "
               f"in {time.perf_counter() - t0:.1f} s")


@weights.command()
@click.argument("name")
@click.option("--sha256", "sha", default=None, help="Expected SHA-256 (or its first 8+ hex digits); "
              "required when none is recorded for NAME.")
@click.option("--url", default=None, help="Download from here instead of the recorded URL.")
@click.option("--force", is_flag=True, help="Download again even if the cached file already matches.")
@click.option("--no-check", is_flag=True, help="Skip loading the download into the network before installing it.")
def fetch(name, sha, url, force, no_check):
    """Download NAME's published weights into the cache, verified by SHA-256.

    Needs internet; never runs on its own (tests and other commands only read the cache). The file is
    downloaded to a temporary name, its checksum compared, loaded into the network, and only then
    moved into place.

    \b
    Example:
      b2b-train weights fetch nafnet-gopro-width32
      b2b-train weights fetch restormer-motion --sha256 <hex digest you trust>
    """
    reg = _registry()
    s = reg.spec(name)
    url = url or s.url
    if not url:
        raise CheckpointError(f"no download known for {name}; pass --url (and --sha256) or give a file path")
    expected = sha or recorded_digest(s, url)
    if not expected:
        raise CheckpointError(
            f"no checksum is recorded for {name}: refusing to install an unverified download; "
            f"pass --sha256 HEX (the digest of a copy you trust)"
        )
    verify_digest("0" * 64, expected)  # validate the format before downloading anything
    file_name = s.weights_file or (name + (Path(urllib.parse.urlparse(url).path).suffix or ".pth"))
    cache = reg.cache_dir()
    dest = cache / file_name
    if dest.is_file() and not force:
        digest = file_sha256(dest)
        if verify_digest(digest, expected):
            click.echo(f"{dest} already present and verified (sha256 {digest})")
            return
        click.echo(f"{dest} exists but does not match the expected checksum: downloading again", err=True)
    t0 = time.perf_counter()
    tmp, digest, size = download(url, cache, file_name, expected)
    try:
        if not no_check:
            from ..checkpoint import load_any_weights

            net = s.build()
            load_any_weights(net, tmp, remap=s.remap, what=name)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    click.echo(f"installed {dest} ({size / 1e6:.1f} MB, sha256 {digest}) in {time.perf_counter() - t0:.1f} s")
