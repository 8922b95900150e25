"""Fuzz the NIfTI/DICOM readers with seeded mutations of pydicom's and nibabel's own sample files.

Every case writes one mutated file (or a 3-file DICOM series with one mutated file), opens it
with :func:`latentmed.data.open_images` and reads every image. The contract: either it reads, or
it raises the project's :class:`~latentmed.errors.LatentmedError` on ONE line naming the file.
Anything else (another exception type, a multi-line message, a message without the file) is a
failure. Same seed, same cases.

    OMP_NUM_THREADS=1 python benchmarks/fuzz_readers.py --cases 10000 --seed 0 > fuzz.json

Prints JSON: counts by outcome, by seed kind and mutation, and the first failures in full.
``tests/test_fuzz_readers.py`` runs 500 cases of the same generator.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import io
import json
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

# DICOM fields whose values the structured mutations replace (numbers and geometry the readers parse)
DICOM_FIELDS = ["Rows", "Columns", "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient",
                "RescaleSlope", "RescaleIntercept", "SliceThickness", "SpacingBetweenSlices", "InstanceNumber",
                "SamplesPerPixel", "NumberOfFrames", "BitsAllocated", "BitsStored", "PixelRepresentation",
                "PhotometricInterpretation", "SeriesInstanceUID", "PlanarConfiguration"]
GARBAGE = ["abc", "nan", "inf", "-inf", "1e400", "", " ", "0", "-1", "65535", "4294967295", "1\\2", "1\\2\\3",
           "1\\0\\0\\0\\0\\0", "0\\0\\0\\0\\0\\0", "nan\\nan\\nan", "1e308\\1e308\\1e308", "1.0.0", "\x00\x01"]
NIFTI_FIELDS = ["dim", "pixdim", "datatype", "scl_slope", "scl_inter", "srow", "quatern", "qform_code",
                "sform_code", "vox_offset", "nan_voxels", "shape2d"]


def seed_files(max_bytes: int | None = None) -> dict[str, list[Path]]:
    """The sample files shipped with pydicom and nibabel (no download): DICOM and NIfTI (up to ``max_bytes``)."""
    import pydicom.data
    from nibabel.testing import data_path

    nib_dir = Path(data_path)
    # the files shipped inside pydicom (get_testdata_files() would also try to download more)
    dicom = sorted(Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent.glob("*.dcm"))
    dicom += sorted(nib_dir.glob("*.dcm"))
    nifti = sorted(p for p in nib_dir.iterdir() if p.name.endswith((".nii", ".nii.gz")))
    if max_bytes:
        dicom, nifti = ([f for f in files if f.stat().st_size <= max_bytes] for files in (dicom, nifti))
    return {"dicom": dicom, "nifti": nifti}


# ------------------------------------------------------------------------------------------- mutations
def _bytes_flip(raw: bytes, rng, head: int | None = None) -> bytes:
    b = bytearray(raw)
    if not b:
        return bytes(b)
    hi = len(b) if head is None else min(len(b), head)
    for _ in range(int(rng.integers(1, 9))):
        b[int(rng.integers(0, hi))] = int(rng.integers(0, 256))
    return bytes(b)


def _truncate(raw: bytes, rng) -> bytes:
    return raw[: int(rng.integers(0, max(1, len(raw))))]


def _dicom_field(raw: bytes, rng) -> bytes:
    """Replace one numeric/geometry field of a DICOM file by garbage text (as a damaged header would hold)."""
    import pydicom
    from pydicom.dataelem import DataElement

    ds = pydicom.dcmread(io.BytesIO(raw), force=True)
    field = DICOM_FIELDS[int(rng.integers(len(DICOM_FIELDS)))]
    value = GARBAGE[int(rng.integers(len(GARBAGE)))]
    tag = pydicom.datadict.tag_for_keyword(field)
    ds[tag] = DataElement(tag, "LO", value)  # a string VR holds anything; readers must parse it
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def _nifti_field(raw: bytes, rng, gz: bool) -> bytes:
    """Change one header field (or the voxels) of a NIfTI file through nibabel."""
    import nibabel as nib

    data = gzip.decompress(raw) if gz else raw
    img = nib.Nifti1Image.from_bytes(data) if data[344:348] in (b"n+1\x00", b"ni1\x00") else \
        nib.Nifti2Image.from_bytes(data)
    hdr = img.header.copy()
    arr = np.asarray(img.dataobj)
    field = NIFTI_FIELDS[int(rng.integers(len(NIFTI_FIELDS)))]
    bad = [np.nan, np.inf, 0.0, -1.0, 1e30, -1e30][int(rng.integers(6))]
    if field == "dim":
        dim = hdr["dim"].copy()
        dim[int(rng.integers(0, 8))] = [0, 1, -1, 7, 32767, 2][int(rng.integers(6))]
        hdr["dim"] = dim
        return _nifti_raw(hdr, arr.tobytes(), gz)
    if field == "pixdim":
        pix = hdr["pixdim"].copy()
        pix[int(rng.integers(0, 8))] = bad
        hdr["pixdim"] = pix
    elif field == "datatype":
        hdr["datatype"] = [0, 1, 2, 4, 8, 16, 32, 64, 128, 255, 511, 1536, 2304, 999][int(rng.integers(14))]
        return _nifti_raw(hdr, arr.tobytes(), gz)
    elif field in ("scl_slope", "scl_inter"):
        hdr[field] = bad
    elif field == "srow":
        hdr["sform_code"] = 1
        row = ["srow_x", "srow_y", "srow_z"][int(rng.integers(3))]
        vals = hdr[row].copy()
        vals[int(rng.integers(0, 4))] = bad
        hdr[row] = vals
        if rng.random() < 0.3:  # all rows zero: a singular affine
            for r in ("srow_x", "srow_y", "srow_z"):
                hdr[r] = np.zeros(4)
    elif field == "quatern":
        hdr["qform_code"], hdr["sform_code"] = 1, 0
        hdr[["quatern_b", "quatern_c", "quatern_d"][int(rng.integers(3))]] = bad
    elif field in ("qform_code", "sform_code"):
        hdr[field] = int(rng.integers(-2, 300))
    elif field == "vox_offset":
        hdr["vox_offset"] = float([0, 1, 347, 1e9, -4][int(rng.integers(5))])
        return _nifti_raw(hdr, arr.tobytes(), gz)
    elif field == "nan_voxels":
        arr = np.asarray(img.get_fdata(), dtype=np.float32).copy()
        if arr.size:
            flat = arr.reshape(-1)
            flat[rng.integers(0, flat.size, size=max(1, flat.size // 50))] = bad
        hdr.set_data_dtype(np.float32)
        hdr["scl_slope"], hdr["scl_inter"] = 1.0, 0.0
    elif field == "shape2d":  # a clean 2D image from the first slice (or a 1-voxel-thick volume)
        a = np.asarray(img.get_fdata(), dtype=np.float32)
        a = a.reshape(a.shape[:3] + (-1,))[..., 0] if a.ndim > 3 else a
        arr = a[:, :, 0] if a.ndim == 3 else a
        if rng.random() < 0.5:
            arr = arr[..., None]
        new = nib.Nifti1Image(arr, img.affine)
        return _nifti_bytes(new, gz)
    return _nifti_bytes(type(img)(arr, None, hdr), gz)


def _nifti_bytes(img, gz: bool) -> bytes:
    data = img.to_bytes()
    return gzip.compress(data, mtime=0) if gz else data


def _nifti_raw(hdr, voxels: bytes, gz: bool) -> bytes:
    """Header bytes + voxels as they are (keeps a header that nibabel would not write itself)."""
    h = hdr.binaryblock
    offset = max(len(h) + 4, 352 if len(h) == 348 else 544)
    data = h + b"\x00" * (offset - len(h)) + voxels
    return gzip.compress(data, mtime=0) if gz else data


MUTATIONS = ["flip", "flip_header", "truncate", "field", "append", "clean"]
MUTATION_P = [0.25, 0.2, 0.15, 0.3, 0.05, 0.05]


def mutate(raw: bytes, mutation: str, kind: str, gz: bool, rng) -> bytes:
    """One seeded mutation of a file's bytes (a structured one falls back to byte flips if it cannot parse)."""
    if mutation == "clean":
        return raw
    if mutation == "append":
        return raw + rng.integers(0, 256, int(rng.integers(1, 64))).astype(np.uint8).tobytes()
    if mutation == "truncate":
        return _truncate(raw, rng)
    if mutation == "field":
        try:
            return _dicom_field(raw, rng) if kind == "dicom" else _nifti_field(raw, rng, gz)
        except Exception:
            mutation = "flip_header"
    inner = gzip.decompress(raw) if gz and rng.random() < 0.7 else None
    body = inner if inner is not None else raw
    head = (544 if body[:4] == b"\x1c\x02\x00\x00" else 352) if kind == "nifti" else 1024
    out = _bytes_flip(body, rng, head if mutation == "flip_header" else None)
    return gzip.compress(out, mtime=0) if inner is not None else out


def series_seeds(dicom: list[Path]) -> list[Path]:
    """Single-frame grayscale DICOM images with patient geometry: seeds for 3-file series."""
    import pydicom

    out = []
    for f in dicom:
        try:
            ds = pydicom.dcmread(str(f), stop_before_pixels=True)
            geometry = "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds and "Rows" in ds
            if geometry and int(ds.get("SamplesPerPixel", 1)) == 1 and int(ds.get("NumberOfFrames", 1) or 1) == 1:
                out.append(f)
        except Exception:
            continue
    return out


@functools.lru_cache(maxsize=None)
def series_bytes(src: Path, n: int = 3) -> tuple[bytes, ...]:
    """``n`` copies of ``src`` stacked along its normal (5 mm apart), one series (file contents)."""
    import pydicom
    from pydicom.uid import generate_uid

    files, series = [], generate_uid(entropy_srcs=[str(src)])
    for k in range(n):
        ds = pydicom.dcmread(str(src))
        ori = np.asarray([float(v) for v in ds.ImageOrientationPatient])
        pos = np.asarray([float(v) for v in ds.ImagePositionPatient]) + 5.0 * k * np.cross(ori[:3], ori[3:])
        ds.ImagePositionPatient = [round(float(v), 4) for v in pos]
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[str(src), str(k)])
        ds.InstanceNumber = k + 1
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=False)
        files.append(out.getvalue())
    return tuple(files)


def make_case(i: int, seed: int, seeds: dict[str, list[Path]], folder: Path) -> dict:
    """Write case ``i`` under ``folder``: what to open, what its errors must name, how it was made."""
    rng = np.random.default_rng([seed, i])
    kind = ["dicom", "dicom", "nifti", "nifti", "series"][int(rng.integers(5))]
    mutation = MUTATIONS[int(rng.choice(len(MUTATIONS), p=MUTATION_P))]
    pool = seeds["series" if kind == "series" else kind]
    src = pool[int(rng.integers(len(pool)))]
    case = folder / f"case{i:06d}"
    case.mkdir(parents=True)
    options = {"skip_bad": bool(rng.random() < 0.3), "size": [None, 32][int(rng.integers(2))],
               "axis": ["sagittal", "axial", "coronal", 0, 2][int(rng.integers(5))],
               "nan_to": [None, None, 0, "min"][int(rng.integers(4))]}
    if kind == "series":
        contents = series_bytes(src)
        j = int(rng.integers(len(contents)))
        for k, raw in enumerate(contents):
            (case / f"s{k}.dcm").write_bytes(mutate(raw, mutation, "dicom", False, rng) if k == j else raw)
        return {"open": case, "name": case, "kind": kind, "mutation": mutation, "seed": src.name, **options}
    gz = src.name.endswith(".gz")
    path = case / ("x.nii.gz" if gz else f"x{src.suffix}")
    path.write_bytes(mutate(src.read_bytes(), mutation, kind, gz, rng))
    return {"open": path, "name": path, "kind": kind, "mutation": mutation, "seed": src.name, **options}


def run_case(case: dict, max_items: int = 6) -> tuple[str, str]:
    """``(outcome, detail)``: read | project_error | multi_line | unnamed | exception:<Type>."""
    import inspect

    from latentmed.data import open_images
    from latentmed.errors import LatentmedError

    known = inspect.signature(open_images).parameters  # older versions lack nan_to/report (before/after runs)
    extra = {k: v for k, v in (("nan_to", case["nan_to"]), ("report", lambda message: None)) if k in known}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = open_images(case["open"], size=case["size"], axis=case["axis"], skip_bad=case["skip_bad"], **extra)
            n = len(ds)
            for j in sorted(set(range(min(n, max_items // 2))) | set(range(max(0, n - max_items // 2), n))):
                item = ds[j]["image"]
                if not bool(np.isfinite(item.numpy()).all()):
                    return "non_finite_image", f"{case['open']}: item {j}"
            return "read", ""
        except LatentmedError as exc:
            msg = str(exc)
            if "\n" in msg or "\r" in msg:
                return "multi_line", msg
            if str(case["name"]) not in msg:
                return "unnamed", msg
            return "project_error", msg
        except Exception as exc:  # the failure this fuzzer looks for
            import traceback

            tb = traceback.extract_tb(exc.__traceback__)[-1]
            return f"exception:{type(exc).__name__}", f"{exc!s:.300} at {Path(tb.filename).name}:{tb.lineno}"


def fuzz(cases: int, seed: int = 0, keep_failures: int = 20, max_bytes: int | None = None) -> dict:
    """Run ``cases`` seeded cases; counts by outcome, by seed kind and by mutation, first failures."""
    import logging

    for name in ("nibabel", "nibabel.global"):  # nibabel logs every header fix it makes
        logging.getLogger(name).setLevel(logging.CRITICAL)
    files = seed_files(max_bytes)
    seeds = {**files, "series": series_seeds(files["dicom"])}
    outcomes: Counter = Counter()
    wrapped: Counter = Counter()  # exception types the project errors wrap (what the libraries raised)
    by_kind: dict[str, Counter] = {}
    by_mutation: dict[str, Counter] = {}
    failures = []
    t0 = time.perf_counter()
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="latentmed-fuzz-", dir=shm if shm.is_dir() else None))
    try:
        for i in range(cases):
            case = make_case(i, seed, seeds, root)
            outcome, detail = run_case(case)
            shutil.rmtree(root / f"case{i:06d}", ignore_errors=True)
            outcomes[outcome] += 1
            if outcome == "project_error":
                found = re.search(r"\((\w+(?:Error|Exception|Warning|error)): ", detail)
                wrapped[found.group(1) if found else "(checked by the readers)"] += 1
            by_kind.setdefault(case["kind"], Counter())[outcome] += 1
            by_mutation.setdefault(case["mutation"], Counter())[outcome] += 1
            if outcome not in ("read", "project_error") and len(failures) < keep_failures:
                failures.append({"case": i, "seed_file": case["seed"], "kind": case["kind"],
                                 "mutation": case["mutation"], "outcome": outcome, "detail": detail})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    bad = sum(v for k, v in outcomes.items() if k not in ("read", "project_error"))
    return {"cases": cases, "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
            "seed_files": {k: len(v) for k, v in seeds.items()}, "failures_total": bad,
            "outcomes": dict(outcomes), "project_errors_wrapping": dict(wrapped.most_common()),
            "by_kind": {k: dict(v) for k, v in by_kind.items()},
            "by_mutation": {k: dict(v) for k, v in by_mutation.items()}, "first_failures": failures}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-bytes", type=int, default=None, help="Only seed files up to this size.")
    args = ap.parse_args(argv)
    result = fuzz(args.cases, args.seed, max_bytes=args.max_bytes)
    print(json.dumps(result, indent=1))
    return 0 if result["failures_total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
