"""The sources registry: every dataset file cifarb can fetch, with URLs, published checksums, licence, citation.

Checksums live in data/assets/checksums.json, copied from ../shared/checksums.md and nowhere else (a test
compares them). Builders take a base URL so tests can point a source at a local server; the registered
entries use the real URLs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources

from cifarb.citations import bibtex
from cifarb.errors import CifarbError

# The 15 standard corruptions first (in the order of Hendrycks & Dietterich), then the 4 extra ones.
CIFAR_C_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter", "saturate",
)
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

TORONTO = "https://www.cs.toronto.edu/~kriz"
ZENODO_C10 = "https://zenodo.org/record/2535967/files"
ZENODO_C100 = "https://zenodo.org/record/3555552/files"
CIFAR10_1_RAW = "https://github.com/modestyachts/CIFAR-10.1/raw/master/datasets"
CIFAR10_1_MIRROR = "https://raw.githubusercontent.com/modestyachts/CIFAR-10.1/master/datasets"

# BibTeX keys in cifarb/citations.bib, the one copy `cifarb cite` prints too.
CITE_CIFAR = bibtex(("krizhevsky2009learning",)).rstrip("\n")
CITE_CIFAR_C = bibtex(("hendrycks2019benchmarking",)).rstrip("\n")
CITE_CIFAR10_1 = bibtex(("recht2018cifar", "recht2019imagenet")).rstrip("\n")

# The published checksums (a data file: cifarb/data/assets/checksums.json).
_CHECKSUMS = json.loads(resources.files("cifarb.data").joinpath("assets", "checksums.json").read_text(encoding="utf-8"))

LICENSE_CIFAR = ("no licence stated by the authors; the dataset page asks users to cite the technical "
                 "report (Krizhevsky 2009)")
LICENSE_C10 = "CC BY 4.0 (Zenodo record 2535967)"
# Not confirmed here for the CIFAR-100-C record; point users at the record rather than guess.
LICENSE_C100 = "as stated on Zenodo record 3555552 (the companion CIFAR-10-C record is CC BY 4.0)"
LICENSE_CIFAR10_1 = "MIT (github.com/modestyachts/CIFAR-10.1)"


@dataclass(frozen=True)
class Archive:
    """A downloadable archive (tar / tar.gz) that holds some of a source's files."""

    filename: str
    url: str
    algo: str
    digest: str
    size: int | None = None
    mirrors: tuple[str, ...] = ()

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url, *self.mirrors)


@dataclass(frozen=True)
class SourceFile:
    """One file that must end up at `<root>/<relpath>`, with its published checksum.

    `url` is where the file or its archive comes from; `member` is its path inside the archive (None for a
    file downloaded directly). `extra` holds further published digests as (algo, hex) pairs.
    """

    relpath: str
    algo: str
    digest: str
    url: str
    size: int | None = None
    member: str | None = None
    mirrors: tuple[str, ...] = ()
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url, *self.mirrors)

    @property
    def checksum(self) -> str:
        return f"{self.algo}:{self.digest}"


@dataclass(frozen=True)
class Source:
    """A data source: the files it puts under the data root and how to get them."""

    name: str
    files: tuple[SourceFile, ...]
    archive: Archive | None
    license: str
    citation: str
    title: str = ""
    homepage: str = ""
    version: str | None = None
    folder: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def file(self, relpath_or_name: str) -> SourceFile:
        for f in self.files:
            if relpath_or_name in (f.relpath, f.relpath.rsplit("/", 1)[-1]):
                return f
        raise KeyError(relpath_or_name)


def cifar_source(dataset: str, base_url: str = TORONTO) -> Source:
    """CIFAR-10 or CIFAR-100, python version: the official tarball and its extracted files."""
    if dataset == "cifar10":
        folder, tar, tar_md5, size = "cifar-10-batches-py", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", 170498071
        md5 = _CHECKSUMS["cifar10"]
        sizes = {"batches.meta": 158}  # known exactly: ../shared's copy matches the md5
        title = "CIFAR-10 (python version)"
    elif dataset == "cifar100":
        folder, tar, tar_md5, size = "cifar-100-python", "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", 169001437
        md5 = _CHECKSUMS["cifar100"]
        sizes = {"meta": 1473}
        title = "CIFAR-100 (python version)"
    else:
        raise ValueError(dataset)
    archive = Archive(tar, f"{base_url}/{tar}", "md5", tar_md5, size)
    files = tuple(
        SourceFile(f"{folder}/{name}", "md5", digest, archive.url, sizes.get(name), member=f"{folder}/{name}")
        for name, digest in md5.items()
    )
    return Source(dataset, files, archive, LICENSE_CIFAR, CITE_CIFAR, title=title,
                  homepage="https://www.cs.toronto.edu/~kriz/cifar.html", folder=folder)


_C10_MD5: dict[str, str] = _CHECKSUMS["cifar10-c"]
_C100_MD5: dict[str, str] = _CHECKSUMS["cifar100-c"]


def cifar_c_source(dataset: str, base_url: str | None = None) -> Source:
    """CIFAR-10-C or CIFAR-100-C (Zenodo): one tar with 19 corruption files and labels.npy."""
    if dataset == "cifar10-c":
        folder, md5s, tar_md5, size = "CIFAR-10-C", _C10_MD5, "56bf5dcef84df0e2308c6dcbcbbd8499", None
        base, record, licence = base_url or ZENODO_C10, "2535967", LICENSE_C10
    elif dataset == "cifar100-c":
        folder, md5s, tar_md5, size = "CIFAR-100-C", _C100_MD5, "11f0ed0f1191edbf9fa23466ae6021d3", 2_918_473_216
        base, record, licence = base_url or ZENODO_C100, "3555552", LICENSE_C100
    else:
        raise ValueError(dataset)
    tar = f"{folder}.tar"
    # zenodo.org/record/... redirects to the newer /records/... form; both serve the same bytes
    mirrors = () if base_url else (f"https://zenodo.org/records/{record}/files/{tar}?download=1",)
    archive = Archive(tar, f"{base}/{tar}", "md5", tar_md5, size, mirrors)
    files = tuple(
        SourceFile(f"{folder}/{name}.npy", "md5", md5s[name], archive.url, member=f"{folder}/{name}.npy")
        for name in (*CIFAR_C_CORRUPTIONS, "labels")
    )
    return Source(dataset, files, archive, licence, CITE_CIFAR_C,
                  title=f"{folder} (Hendrycks & Dietterich 2019)",
                  homepage=f"https://zenodo.org/record/{record}", folder=folder,
                  notes=("each <corruption>.npy: uint8 (50000, 32, 32, 3) = severities 1..5 x 10,000 test images",))


# version -> kind -> (git blob id, sha256 or None)
_C10_1 = {v: {kind: tuple(pair) for kind, pair in d.items()} for v, d in _CHECKSUMS["cifar10.1"].items()}
CIFAR10_1_SIZES = {"v6": 2000, "v4": 2021}


def cifar10_1_source(version: str = "v6", base_url: str | None = None) -> Source:
    """CIFAR-10.1 (v6 or v4): two .npy files downloaded directly, verified by their git blob ids."""
    if version not in _C10_1:
        raise CifarbError(f"unknown CIFAR-10.1 version {version!r}; choose v6 (default) or v4")
    base = base_url or CIFAR10_1_RAW
    files = []
    for kind, (blob, sha256) in _C10_1[version].items():
        name = f"cifar10.1_{version}_{kind}.npy"
        mirrors = () if base_url else (f"{CIFAR10_1_MIRROR}/{name}",)
        extra = (("sha256", sha256),) if sha256 else ()
        files.append(SourceFile(f"CIFAR-10.1/{name}", "gitblob", blob, f"{base}/{name}", mirrors=mirrors, extra=extra))
    return Source("cifar10.1", tuple(files), None, LICENSE_CIFAR10_1, CITE_CIFAR10_1,
                  title=f"CIFAR-10.1 {version} ({CIFAR10_1_SIZES[version]:,} images)",
                  homepage="https://github.com/modestyachts/CIFAR-10.1", version=version, folder="CIFAR-10.1",
                  notes=("git blob id = sha1(b'blob <size>\\0' + content), e.g. `git hash-object FILE`",))


SOURCES: dict[str, Source] = {
    "cifar10": cifar_source("cifar10"),
    "cifar100": cifar_source("cifar100"),
    "cifar10-c": cifar_c_source("cifar10-c"),
    "cifar100-c": cifar_c_source("cifar100-c"),
    "cifar10.1": cifar10_1_source("v6"),
    "cifar10.1-v4": cifar10_1_source("v4"),
}
DATA_NAMES: tuple[str, ...] = ("cifar10", "cifar100", "cifar10-c", "cifar100-c", "cifar10.1")


def get_source(name: str, version: str | None = None) -> Source:
    """The registered source `name` ('cifar10.1' takes version 'v6' (default) or 'v4')."""
    key = str(name).strip().lower()
    if key in ("cifar10.1-v6", "cifar10.1-v4"):
        key, version = "cifar10.1", version or key.rsplit("-", 1)[1]
    if version is not None:
        if key != "cifar10.1":
            raise CifarbError(f"--version applies to cifar10.1 only, not {name}")
        if version not in CIFAR10_1_SIZES:
            raise CifarbError(f"unknown CIFAR-10.1 version {version!r}; choose v6 (default) or v4")
        key = "cifar10.1" if version == "v6" else "cifar10.1-v4"
    if key not in SOURCES:
        raise CifarbError(f"unknown dataset name {name!r}; choose one of: {', '.join(DATA_NAMES)} "
                          "(cifar10.1 takes --version v6|v4)")
    return SOURCES[key]


def find_registered(relpath: str) -> SourceFile | None:
    """The registered entry for a file path relative to the data root, if any."""
    for source in SOURCES.values():
        for f in source.files:
            if f.relpath == relpath:
                return f
    return None
