"""Nothing accepted silently, nothing crashes the error handler (issue 24).

Damaged model and run files, ``--out`` that is a file, any exception through the CLI (one line,
non-zero exit), and the faults of a shared cluster: SIGTERM mid-run (checkpoint, clean exit, same
loss curve on resume), a second training into a busy run folder, a full disk during a checkpoint.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from latentmed.cli.main import app, main
from latentmed.errors import LatentmedError

runner = CliRunner()
MICRO = {"preset": "tiny",
         "model": {"image_size": 16, "model_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
                   "attention_resolutions": [], "z_dim": 8,
                   "encoder": {"channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": []}},
         "train": {"steps": 4, "batch_size": 4, "checkpoint_every": 2, "log_every": 1, "progress": False},
         "latent": {"steps": 0}}


def _one_line(result_or_text, code: int | None = None) -> str:
    """The single ``Error:`` line of a CLI run (``Threads:``/``Note:`` lines aside); checks the exit code."""
    text = result_or_text if isinstance(result_or_text, str) else result_or_text.output
    if code is not None:
        assert result_or_text.exit_code == code, text
    lines = [ln for ln in text.strip().splitlines() if ln.startswith("Error:") or "Traceback" in ln]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from latentmed.io import write_image

    root = tmp_path_factory.mktemp("img")
    rng = np.random.default_rng(0)
    for i in range(8):
        write_image(rng.integers(0, 255, (16, 16), dtype=np.uint8), root / f"im{i}.png")
    (root.parent / "cfg.yaml").write_text(yaml.safe_dump(MICRO))
    return root


@pytest.fixture(scope="module")
def run(images):
    out = images.parent / "run"
    result = runner.invoke(app, ["dae", "train", "--data", str(images), "--config", str(images.parent / "cfg.yaml"),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _train_args(images, out, *extra):
    return ["dae", "train", "--data", str(images), "--config", str(images.parent / "cfg.yaml"), "--out", str(out),
            *map(str, extra)]


def _copy(run, tmp_path) -> Path:
    import shutil

    shutil.copytree(run, tmp_path / "r")
    return tmp_path / "r"


# ------------------------------------------------------------------ one error path for everything
def test_unexpected_exception_is_one_line_through_main_and_the_runner(monkeypatch, capsys, images, tmp_path):
    import latentmed.dae

    def boom(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(latentmed.dae, "train_dae", boom)
    result = runner.invoke(app, _train_args(images, tmp_path / "o"))
    assert "unexpected ZeroDivisionError: a bug" in _one_line(result, 1) and "--debug" in result.output
    with pytest.raises(SystemExit) as exc:
        main(_train_args(images, tmp_path / "o"))
    err = capsys.readouterr().err
    assert exc.value.code == 1 and "unexpected ZeroDivisionError: a bug" in _one_line(err)
    with pytest.raises(ZeroDivisionError):  # --debug: the traceback
        main(["--debug", *_train_args(images, tmp_path / "o")])


def test_bad_option_and_no_args_still_handled_by_main(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["dae", "train", "--steps", "x"])
    assert exc.value.code == 2 and "--steps" in _one_line(capsys.readouterr().err)
    with pytest.raises(SystemExit) as exc:
        main(["dae"])
    shown = capsys.readouterr()
    assert exc.value.code in (0, 2) and "train" in shown.out + shown.err  # the group's help page


# ------------------------------------------------------------------ damaged model and run files
@pytest.mark.parametrize("name, cut", [("model/model.safetensors", 0.5), ("model/config.json", 0.3),
                                       ("config.yaml", -1)])
def test_damaged_model_files_are_one_line_naming_the_file(run, tmp_path, images, name, cut):
    r = _copy(run, tmp_path)
    data = (r / name).read_bytes()
    (r / name).write_bytes(data[: int(len(data) * cut)] if cut > 0 else b"\xff\xfe garbage: [" + data[:7])
    for argv in (["info", str(r)], ["dae", "encode", str(r), "--data", str(images), "--out", str(tmp_path / "z.npz")]):
        line = _one_line(runner.invoke(app, argv), 2)
        assert str(r / name) in line and ("restore" in line or "re-train" in line), line


@pytest.mark.parametrize("name", ["trainer_state.pt", "model.safetensors"])
def test_damaged_checkpoint_names_the_file_and_what_to_do(run, tmp_path, images, name):
    r = _copy(run, tmp_path)
    (r / "checkpoint" / name).write_bytes((r / "checkpoint" / name).read_bytes()[:100])
    line = _one_line(runner.invoke(app, _train_args(images, r, "--steps", 6)), 2)
    assert str(r / "checkpoint" / name) in line and "delete it to train from the start" in line, line
    import shutil

    shutil.copytree(run / "checkpoint", r / "checkpoint.prev")  # a complete previous checkpoint: say so
    line = _one_line(runner.invoke(app, _train_args(images, r, "--steps", 6)), 2)
    assert f"move {r / 'checkpoint.prev'} to {r / 'checkpoint'}" in line, line


def test_out_that_is_a_file_is_refused_before_reading_data(images, tmp_path):
    (tmp_path / "f").write_text("x")
    for out in (tmp_path / "f", tmp_path / "f" / "sub"):
        argv = _train_args(images, out)
        argv[argv.index("--data") + 1] = str(tmp_path / "no-such-data")  # never read
        line = _one_line(runner.invoke(app, argv), 2)
        assert "is a file, not a folder" in line, line
    for argv in (["ldm", "train-vae", images, "--out", tmp_path / "f", "--size", 16],  # the other trainers too
                 ["shape", "train", "--model", "vae", "--data", tmp_path, "--out", tmp_path / "f"]):
        line = _one_line(runner.invoke(app, list(map(str, argv))), 2)
        assert f"--out {tmp_path / 'f'}: {tmp_path / 'f'} is a file, not a folder" in line, line


# ------------------------------------------------------------------ faults of a shared cluster
def test_second_training_into_a_busy_run_folder_is_refused_and_a_dead_lock_is_not(images, tmp_path):
    out = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from latentmed.train.runlock import run_lock\n"
                               "with run_lock(sys.argv[1]):\n print('held', flush=True); time.sleep(60)", str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = _one_line(runner.invoke(app, _train_args(images, out)), 2)
        assert "is being trained by pid" in line and str(holder.pid) in line and "another --out" in line, line
    finally:
        holder.kill()  # like a crashed run: the kernel drops its lock
        holder.wait()
    assert (out / ".lock").is_file()
    result = runner.invoke(app, _train_args(images, out, "--steps", 2))
    assert result.exit_code == 0, result.output


def test_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_previous(run, images, tmp_path, monkeypatch):
    import latentmed.train.checkpoint as C

    r = _copy(run, tmp_path)
    before = C.load_checkpoint(r)
    real = C.save_safetensors

    def full(path, tensors, metadata=None):
        if Path(path).name == "ema.safetensors":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, tensors, metadata)

    monkeypatch.setattr(C, "save_safetensors", full)
    with pytest.raises(LatentmedError, match=r"no space left on device; the previous checkpoint .* \(step 4\) is "
                                             r"intact\. Free space"):
        C.save_checkpoint(r, before[0], before[1], {**before[2], "step": 6})
    after = C.load_checkpoint(r)
    assert after[2]["step"] == 4 and all((after[0][k] == before[0][k]).all() for k in before[0])
    assert not list(r.glob(".checkpoint.*"))
    line = _one_line(runner.invoke(app, _train_args(images, r, "--steps", 6)), 2)  # the same through the CLI
    assert "cannot write a checkpoint, no space left on device; the previous checkpoint" in line, line
    assert C.load_checkpoint(r)[2]["step"] == 4


def test_sigterm_writes_a_checkpoint_exits_cleanly_and_resumes_on_the_same_curve(images, tmp_path):
    cfg = {**MICRO, "train": {**MICRO["train"], "steps": 400, "checkpoint_every": 2}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    argv = ["dae", "train", "--data", str(images), "--config", str(tmp_path / "cfg.yaml"), "--objective", "baseline"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "latentmed.cli.main", *argv, "--out", str(tmp_path / "a")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    t0 = time.time()
    while not (tmp_path / "a" / "checkpoint" / "trainer_state.pt").is_file() and time.time() - t0 < 60:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, out + err
    line = _one_line(err)
    assert "training stopped by SIGTERM after step" in line and "Run the same command to resume" in line, line
    import torch

    k = int(torch.load(tmp_path / "a" / "checkpoint" / "trainer_state.pt", weights_only=True)["step"])
    assert 2 <= k < 400 and f"after step {k} of 400" in line
    end = k + 3
    assert runner.invoke(app, [*argv, "--out", str(tmp_path / "a"), "--steps", end]).exit_code == 0
    assert runner.invoke(app, [*argv, "--out", str(tmp_path / "b"), "--steps", end]).exit_code == 0
    import pandas as pd

    a, b = (pd.read_csv(tmp_path / x / "log.csv") for x in "ab")
    assert list(a["step"]) == list(range(1, end + 1))
    np.testing.assert_array_equal(a["loss"].to_numpy(), b["loss"].to_numpy())


# ------------------------------------------------------------------ DICOM series with damaged files
def _ct5n(tmp_path) -> Path:
    """pydicom's five-slice CT series (2.5 mm apart) copied as ``*.dcm``; skipped where not shipped."""
    import shutil

    from pydicom.data import get_testdata_file

    src = Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests" / "98892001" / "CT5N"
    if not src.is_dir():
        pytest.skip("pydicom's CT5N sample series is not installed")
    out = tmp_path / "ct5"
    out.mkdir()
    for f in sorted(src.iterdir()):
        shutil.copy(f, out / f"{f.name}.dcm")
    return out


def _truncate(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_truncated_slice_in_a_series_is_an_error_not_a_gap_with_a_note(tmp_path, run):
    from latentmed.data import open_images

    folder = _ct5n(tmp_path)
    assert len(open_images(folder, axis=2, window="bone")) == 16  # the sound series: 16 x 16 x 5
    _truncate(folder / "2693.dcm", 0.5)  # the middle slice, cut in its header
    notes: list[str] = []
    with pytest.raises(LatentmedError, match="2693.dcm: damaged DICOM file: a CT Image Storage file without "
                                             "Rows/Columns"):
        open_images(folder, axis=2, report=notes.append)
    assert not any("without an image" in n for n in notes), notes
    with pytest.raises(LatentmedError, match=r"a gap of 5 mm between 3023.dcm and 2392.dcm where slices lie 2.5 mm "
                                             r"apart .*--allow-gaps"):
        open_images(folder, axis=2, skip_bad=True, report=notes.append)
    assert any(n.startswith("skipped 1 unreadable DICOM file") and "2693.dcm" in n for n in notes), notes
    data = open_images(folder, axis=2, skip_bad=True, allow_gaps=True, report=notes.append)
    assert len(data) == 16 and any("gaps allowed" in n for n in notes)
    encode = ["dae", "encode", str(run), "--data", str(folder), "--axis", "2", "--out", str(tmp_path / "z.npz")]
    assert "2693.dcm: damaged DICOM file" in _one_line(runner.invoke(app, encode), 2)
    assert "a gap of 5 mm between 3023.dcm and 2392.dcm" in _one_line(runner.invoke(app, [*encode, "--skip-bad"]), 2)
    result = runner.invoke(app, [*encode, "--skip-bad", "--allow-gaps"])
    assert result.exit_code == 0 and np.load(tmp_path / "z.npz")["z_sem"].shape[0] == 16, result.output


def test_missing_slice_is_an_error_naming_the_neighbours(tmp_path):
    from latentmed.data import open_images

    folder = _ct5n(tmp_path)
    (folder / "3023.dcm").unlink()
    with pytest.raises(LatentmedError, match="a gap of 5 mm between 3353.dcm and 2693.dcm"):
        open_images(folder, axis=2)
    assert len(open_images(folder, axis=2, allow_gaps=True)) == 16


def test_skip_bad_skips_a_pixel_truncated_copy_before_grouping(tmp_path, run):
    from pydicom.data import get_testdata_file

    from latentmed.data import open_images

    ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    (tmp_path / "a_CT_small.dcm").write_bytes(ct)
    (tmp_path / "b_trunc.dcm").write_bytes(ct[: len(ct) * 3 // 4])  # header whole, pixel data cut
    (tmp_path / "c_empty.dcm").write_bytes(b"")
    (tmp_path / "d_random.dcm").write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(LatentmedError, match=r"b_trunc.dcm: pixel data hold \d+ bytes where Rows x Columns x frames "
                                             r"need 32768 \(a truncated file\)"):
        open_images(tmp_path)
    notes: list[str] = []
    data = open_images(tmp_path, skip_bad=True, report=notes.append)
    assert data.ids == ["a_CT_small"]
    skipped = next(n for n in notes if n.startswith("skipped 3 unreadable DICOM file"))
    assert all(name in skipped for name in ("b_trunc.dcm", "c_empty.dcm", "d_random.dcm")), skipped
    encode = ["dae", "encode", str(run), "--data", str(tmp_path), "--out", str(tmp_path / "z.npz")]
    assert "b_trunc.dcm: pixel data hold" in _one_line(runner.invoke(app, encode), 2)
    result = runner.invoke(app, [*encode, "--skip-bad"])
    assert result.exit_code == 0 and "Note: skipped 3 unreadable DICOM file(s)" in result.output, result.output


# ------------------------------------------------------------------ smaller notices
def test_grader_class_weight_keyed_by_grades_is_explained_as_the_probes_sides():
    from latentmed.latent.grader import HyperplaneGrader

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2, 3], 10)
    X = rng.normal(size=(40, 4)) + y[:, None]
    with pytest.raises(LatentmedError, match=r"class_weight keys \[2\] are not sides of the probe: .* 0 = negative "
                                             r"grades \[0\] and 1 = positive grades \[1, 2, 3\]"):
        HyperplaneGrader(class_weight={0: 1, 2: 10}).fit(X, y)
    heavy = HyperplaneGrader(class_weight={0: 1, 1: 10}).fit(X, y)
    assert heavy.probe_.class_weight == {0: 1, 1: 10}


def test_batch_larger_than_the_data_is_announced(images, tmp_path):
    result = runner.invoke(app, _train_args(images, tmp_path / "r", "--batch-size", 20, "--steps", 1))
    assert result.exit_code == 0, result.output
    assert "Note: batch size 20 is larger than the 8 training image(s)" in result.output


def test_invalid_image_size_suggests_the_nearest_valid_one(images, tmp_path):
    argv = ["dae", "train", "--data", str(images), "--out", str(tmp_path / "r"), "--preset", "tiny", "--size", 7]
    line = _one_line(runner.invoke(app, list(map(str, argv))), 2)
    assert "image_size 7 must be divisible by 4" in line and "(8 or 4, e.g. --size 8)" in line, line


def test_atomic_writes_get_the_usual_file_permissions(tmp_path):
    """A report written through a temporary file is readable by others as any new file is (umask),
    not 0600 as mkstemp makes it: clinicians open reports from shared folders."""
    import os
    import stat

    from latentmed.io import write_text

    old = os.umask(0o022)
    try:
        path = write_text(tmp_path / "report.html", "<p>hi</p>")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
