"""Seeded fuzzing of the NIfTI/DICOM readers (500 cases of ``benchmarks/fuzz_readers.py``).

Mutations of pydicom's and nibabel's own sample files (byte flips, header flips, truncation,
garbage in numeric DICOM fields and NIfTI header fields, NaN voxels, 2D images, 3-file series
with one damaged file) must either read or raise the project's one-line error naming the file.
The 10,000-case run is the benchmark: ``python benchmarks/fuzz_readers.py --cases 10000``.
"""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("nibabel")
pytest.importorskip("pydicom")


def _fuzz_module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_readers.py"
    spec = importlib.util.spec_from_file_location("fuzz_readers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_500_mutated_sample_files_read_or_fail_with_one_named_line():
    fuzz = _fuzz_module()
    result = fuzz.fuzz(500, seed=13, max_bytes=64 * 1024)  # small seeds keep it to a few seconds
    assert result["failures_total"] == 0, result["first_failures"]
    outcomes = result["outcomes"]
    assert set(outcomes) <= {"read", "project_error"}
    # the mutations are not toothless: both outcomes occur for every kind of seed
    for kind, counts in result["by_kind"].items():
        assert counts.get("read", 0) > 0 and counts.get("project_error", 0) > 0, (kind, counts)
    assert sum(outcomes.values()) == 500


def test_fuzz_cases_are_seeded(tmp_path):
    fuzz = _fuzz_module()
    seeds = fuzz.seed_files(64 * 1024)
    seeds["series"] = fuzz.series_seeds(seeds["dicom"])
    a = fuzz.make_case(7, 3, seeds, tmp_path / "a")
    b = fuzz.make_case(7, 3, seeds, tmp_path / "b")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
                                      for f in files_a)
    assert {k: v for k, v in a.items() if k not in ("open", "name")} == \
        {k: v for k, v in b.items() if k not in ("open", "name")}
