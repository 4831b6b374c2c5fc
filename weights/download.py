"""Weight files by URL or path, downloaded once into a cache and checked against the hash in their name.

torchvision names its files ``<name>-<hash>.pth`` where ``<hash>`` is the first hex digits (eight or
more) of the SHA-256 of the file (``resnet50-0676ba61.pth``); ``torch.hub``'s ``check_hash`` refuses a
download whose digest does not start with them. :func:`fetch` does the same, torch-free:

* a URL is streamed into a hidden temporary file in the cache directory while it is hashed, and renamed
  to its final name only when it is complete and its digest fits the name (:mod:`atomic`); a mismatch,
  a short read or a network error leaves nothing in the cache. Beside the file lies
  ``<file>.sha256`` (its full digest, size and modification time), so later calls need neither the
  network nor a re-hash; a cached file changed since is hashed again, and downloaded again if its
  digest no longer fits its name.
* a local path (or a file already in the cache) is used in place, its digest checked the same way
  when its name carries one.

The cache is ``cache_dir`` if given, else ``$MODELZOO_CACHE``, else ``~/.cache/modelzoo/weights``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable, Optional

from atomic import publish_file, write_text

__all__ = [
    "CACHE_ENV",
    "DEFAULT_CACHE_DIR",
    "DownloadError",
    "Fetched",
    "HashMismatchError",
    "cache_dir",
    "fetch",
    "hash_prefix",
    "is_url",
    "sha256_of",
]

CACHE_ENV = "MODELZOO_CACHE"
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "modelzoo", "weights")
DIGEST_SUFFIX = ".sha256"
_CHUNK = 1 << 20
# torch.hub's convention: "<name>-<first 8 or more hex digits of the SHA-256>.<ext>".
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.")
_URL_SCHEMES = ("http", "https", "ftp", "file")


class DownloadError(OSError):
    """A download failed (network, HTTP status, short read); nothing was cached. One-line message."""


class HashMismatchError(ValueError):
    """A file's SHA-256 does not start with the hash in its name; nothing was cached. One-line message."""


@dataclass(frozen=True)
class Fetched:
    """A verified local copy of a weights file.

    Attributes:
        path: the file (in the cache for a URL, the path itself for a local file).
        sha256: its full SHA-256, hex.
        downloaded: True when this call downloaded it, False when it was already there.
    """

    path: str
    sha256: str
    downloaded: bool


def cache_dir(path: Optional[str] = None) -> str:
    """The cache directory: ``path``, else ``$MODELZOO_CACHE``, else ``~/.cache/modelzoo/weights`` (absolute)."""
    chosen = path or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR
    return os.path.abspath(os.path.expanduser(chosen))


def is_url(source: str) -> bool:
    """Whether ``source`` is a URL (http, https, ftp, file) rather than a local path."""
    return urllib.parse.urlsplit(source).scheme.lower() in _URL_SCHEMES


def hash_prefix(filename: str) -> Optional[str]:
    """The SHA-256 prefix a file name carries (``resnet50-0676ba61.pth`` -> ``0676ba61``), or None."""
    match = _HASH_IN_NAME.search(os.path.basename(filename))
    return match.group(1) if match else None


def sha256_of(path: str) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check(name: str, digest: str, where: str) -> None:
    prefix = hash_prefix(name)
    if prefix is not None and not digest.startswith(prefix):
        raise HashMismatchError(
            f"{where}: SHA-256 {digest[:16]}... does not start with {prefix}, the hash in the file name; the file is "
            "damaged or not the one published, and was not cached.")


def _url_filename(url: str) -> str:
    name = os.path.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    if not name or name in (".", "..") or os.sep in name or (os.altsep and os.altsep in name):
        raise DownloadError(f"{url}: the URL names no file (it should end in one, such as resnet50-0676ba61.pth).")
    return name


def _stamp(path: str) -> str:
    """Size and modification time of ``path``: a ``.sha256`` record holds only for the file it was made for."""
    st = os.stat(path)
    return f"{st.st_size} {st.st_mtime_ns}"


def _read_digest(path: str) -> Optional[str]:
    """The digest recorded beside ``path``, if the record is for the file as it is now."""
    try:
        with open(path + DIGEST_SUFFIX, encoding="ascii") as f:
            digest, _, stamp = f.read().strip().partition(" ")
        if re.fullmatch(r"[0-9a-f]{64}", digest) and stamp == _stamp(path):
            return digest
    except (OSError, UnicodeDecodeError):
        pass
    return None


def _verified(path: str, where: str) -> str:
    """The digest of ``path``, checked against its name; the ``.sha256`` record when it is current."""
    digest = _read_digest(path)
    if digest is None:
        digest = sha256_of(path)
        _check(path, digest, where)
    return digest


def _download(url: str, destination: str, timeout: float, log: Optional[Callable[[str], None]]) -> str:
    """Streams ``url`` into ``destination`` (atomically), checking length and hash; returns the digest."""
    if log:
        log(f"Downloading {url} to {destination}")
    digest = hashlib.sha256()
    received = 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "modelzoo-weights"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            with publish_file(destination, "wb") as out:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                if expected is not None and expected.isdigit() and int(expected) != received:
                    raise DownloadError(f"{url}: the connection closed after {received} of {expected} bytes; "
                                        "nothing was cached, try again.")
                _check(destination, digest.hexdigest(), url)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}; nothing was cached.") from None
    except urllib.error.URLError as e:
        raise DownloadError(f"{url}: cannot download ({e.reason}); nothing was cached. Offline? Download the file "
                            "elsewhere and pass its local path.") from None
    except (OSError, ValueError, http.client.HTTPException) as e:  # resets, timeouts, IncompleteRead
        if isinstance(e, (DownloadError, HashMismatchError)):
            raise
        raise DownloadError(f"{url}: download failed ({type(e).__name__}: {e}); nothing was cached.") from None
    return digest.hexdigest()


def fetch(source: str, cache: Optional[str] = None, *, timeout: float = 60.0,
          log: Optional[Callable[[str], None]] = None) -> Fetched:
    """A verified local copy of ``source``: downloaded into the cache once, or a local file in place.

    Args:
        source: a URL (http, https, ftp, file) or a local path.
        cache: the cache directory (default: ``$MODELZOO_CACHE``, else ``~/.cache/modelzoo/weights``).
        timeout: seconds a connection may stall before the download fails.
        log: called with a line when a download starts.

    Returns:
        A :class:`Fetched`.

    Raises:
        FileNotFoundError: a local path that does not exist.
        HashMismatchError: the digest does not start with the hash in the file name (nothing cached).
        DownloadError: the download failed (nothing cached).
    """
    if not is_url(source):
        path = os.path.abspath(os.path.expanduser(source))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{source}: no such file.")
        return Fetched(path=path, sha256=_verified(path, source), downloaded=False)
    destination = os.path.join(cache_dir(cache), _url_filename(source))
    if os.path.isfile(destination):
        try:
            return Fetched(path=destination, sha256=_verified(destination, destination), downloaded=False)
        except HashMismatchError:  # a damaged copy (not written by fetch): replaced by a fresh download
            if log:
                log(f"{destination}: damaged copy (hash does not fit its name), downloading it again")
            os.unlink(destination)
    digest = _download(source, destination, timeout, log)
    write_text(destination + DIGEST_SUFFIX, f"{digest} {_stamp(destination)}\n")
    return Fetched(path=destination, sha256=digest, downloaded=True)
