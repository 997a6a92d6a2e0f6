"""A new user's mistakes get one short line that says what to do, exit status 2, no traceback,
and before any slow work (training, loading a model, starting a server)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from convscope.cli import main


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "500")  # (rich breaks a long path anywhere to fit the width)


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return " ".join(capsys.readouterr().err.split())  # (rich wraps long lines at the terminal's width)


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What argparse said, exiting with status 2."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return _err(capsys)


def test_a_misspelt_option_is_said_by_its_command_with_the_option_meant(capsys) -> None:
    # (it was `convscope: error: unrecognized arguments: --fromat csv` under the usage of
    # `convscope`, which has no --format)
    err = _usage_error(["export", "my-run", "--fromat", "csv", "--out", "x"], capsys)
    assert "usage: convscope export" in err and "convscope export: error: unrecognized arguments: --fromat csv" in err
    assert "did you mean --format?" in err and "`convscope export --help`" in err
    err = _usage_error(["demo", "--no-serev", "--evry=5"], capsys)
    assert "usage: convscope demo" in err and "did you mean --no-serve, --every?" in err
    err = _usage_error(["zoo", "train", "lenet5", "--sed", "1"], capsys)
    assert "usage: convscope zoo train" in err and "did you mean --seed?" in err
    err = _usage_error(["runs", "extra"], capsys)
    assert "convscope runs: error: unrecognized arguments: extra;" in err and "did you mean" not in err


@pytest.mark.parametrize(
    ("argv", "short", "meant"),
    [(["zoo", "train", "lenet5", "--epoch", "2"], "--epoch", "--epochs"), (["demo", "--step", "5", "--no-serve"], "--step", "--steps"),
     (["export", "my-run", "--form", "csv", "--out", "x"], "--form", "--format"), (["runs", "--log", "x"], "--log", "--logdir")],
)
def test_a_shortened_option_is_refused_not_taken_for_the_whole_one(argv: list[str], short: str, meant: str, capsys) -> None:
    # (argparse took `zoo train lenet5 --epoch 2` for --epochs 2, and the cached weights were
    # overwritten by a two-epoch training)
    err = _usage_error(argv, capsys)
    assert f"unrecognized arguments: {short}" in err and f"did you mean {meant}?" in err


@pytest.mark.parametrize(
    "argv",
    [["demo", "--steps", "0"], ["demo", "--steps", "-5"], ["demo", "--every", "0"], ["demo", "--every", "ten"],
     ["zoo", "train", "lenet5", "--epochs", "0"]],
)
def test_counts_must_be_above_zero(argv: list[str], capsys, tmp_path) -> None:
    # (`demo --steps -5` trained nothing and said "trained -5 steps ... test accuracy nan%")
    err = _usage_error([*argv, "--logdir", str(tmp_path), "--no-serve"] if argv[0] == "demo" else argv, capsys)
    assert f"argument {argv[-2]}: must be a whole number above 0, not '{argv[-1]}'" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("argv", "said"),
    [(["serve", "--port", "99999"], "from 0 (any free one) to 65535"), (["serve", "--port", "-1"], "from 0"),
     (["open", "lenet5", "--port", "70000"], "from 0"), (["demo", "--port", "x"], "from 0"),
     (["paraview", "--run", "r", "--live", "0"], "from 1 to 65535")],
)
def test_ports_out_of_range_are_said(argv: list[str], said: str, capsys) -> None:
    # (`serve --port 99999` ended in OverflowError's traceback)
    assert said in _usage_error(argv, capsys)


def test_a_logdir_that_is_a_file_is_said_before_a_server_starts(tmp_path, capsys) -> None:
    # (serve and open ended in FileExistsError's traceback; runs said the file did not exist)
    afile = tmp_path / "runs.txt"
    afile.write_text("not a folder")
    assert main(["serve", "--logdir", str(afile), "--port", "0"]) == 2
    assert f"--logdir {afile} is a file, not a folder; pass --logdir a folder" in _err(capsys)
    assert main(["open", "lenet5", "--untrained", "--no-browser", "--logdir", str(afile / "sub")]) == 2
    assert f"--logdir {afile / 'sub'} lies under {afile}, which is a file" in _err(capsys)
    assert main(["runs", "--logdir", str(afile)]) == 2
    assert f"log directory {afile} is a file, not a folder; pass --logdir the folder" in _err(capsys)


def test_zoo_train_checks_its_out_before_training(tmp_path, capsys, monkeypatch) -> None:
    # (it trained for minutes, then ended in FileExistsError's traceback)
    import convscope.models.zoo as zoo

    def trained(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained before --out was checked")

    monkeypatch.setattr(zoo, "train_zoo_model", trained)
    afile = tmp_path / "w.txt"
    afile.write_text("")
    assert main(["zoo", "train", "lenet5", "--out", str(afile / "lenet5.safetensors")]) == 2
    assert f"cannot write --out {afile / 'lenet5.safetensors'}: {afile} is a file, not a folder" in _err(capsys)
    assert main(["zoo", "train", "lenet5", "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a folder; pass a file name for the weights, e.g. {tmp_path / 'lenet5'}.safetensors" in _err(capsys)


def test_summary_says_a_bad_input_before_printing_the_table(tmp_path, capsys) -> None:
    # (the whole structure table came first, then the error under it)
    assert main(["summary", "lenet5", "--untrained", "--input", str(tmp_path / "missing.png")]) == 2
    captured = capsys.readouterr()
    assert "conv1" not in captured.out and "does not exist" in captured.err
    (tmp_path / "x.png").write_text("not an image")
    assert main(["summary", "lenet5", "--untrained", "--input", str(tmp_path / "x.png")]) == 2
    captured = capsys.readouterr()
    assert "conv1" not in captured.out and "is not a readable image" in " ".join(captured.err.split())


def test_open_names_the_image_file_it_cannot_read(tmp_path, capsys) -> None:
    # (it said "uploaded bytes is not a readable image", of a file given on the command line)
    bad = tmp_path / "seven.png"
    bad.write_text("not an image")
    assert main(["open", "lenet5", str(bad), "--untrained", "--no-browser", "--logdir", str(tmp_path / "runs")]) == 2
    err = _err(capsys)
    assert "image 'seven.png' is not a readable image" in err and "uploaded bytes" not in err
    # a missing image is said before the model is looked for
    assert main(["open", "no-such-model", "--no-browser", str(tmp_path / "missing.png")]) == 2
    assert f"input image '{tmp_path / 'missing.png'}' does not exist" in _err(capsys)


def test_open_takes_images_after_its_options(tmp_path, capsys) -> None:
    # (`convscope open model.onnx --arch x cat.png` said "unrecognized arguments: cat.png")
    bad = tmp_path / "cat.png"
    bad.write_text("not an image")
    assert main(["open", "lenet5", "--untrained", "--no-browser", str(bad)]) == 2  # (read as an input: it is not an image)
    assert "image 'cat.png' is not a readable image" in _err(capsys)
    err = _usage_error(["open", "lenet5", "--untrained", str(bad), "--no-browsr"], capsys)
    assert "unrecognized arguments:" in err and "did you mean --no-browser?" in err


def test_open_url_without_a_server_there_says_so(capsys) -> None:
    # (httpx's ConnectError / UnsupportedProtocol ended it with a traceback)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # (free once closed: nothing listens there)
    for url in (f"http://127.0.0.1:{port}/", "127.0.0.1:8765"):
        assert main(["open", "lenet5", "--untrained", "--no-browser", "--url", url]) == 2
        err = _err(capsys)
        assert f"cannot reach a convscope server at {url}" in err and "`convscope serve`" in err and "Traceback" not in err


def test_open_url_at_another_program_that_answers_json_says_so(capsys) -> None:
    # (an answer without the fields a convscope server gives ended it with a KeyError)
    import http.server
    import threading

    class Other(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{other.server_address[1]}/"
        assert main(["open", "lenet5", "--untrained", "--no-browser", "--url", url]) == 2
    finally:
        other.shutdown()
        other.server_close()
    err = _err(capsys)
    assert "did not take the model: its answer is not a convscope server's; check --url" in err and "Traceback" not in err


def test_export_says_what_a_run_argument_that_is_a_path_should_be(tmp_path, capsys) -> None:
    # (a file that is not a run: "'x' is not a valid run id"; a missing run file: no hint what to pass)
    afile = tmp_path / "notes.txt"
    afile.write_text("")
    assert main(["export", str(afile), "--out", str(tmp_path / "out")]) == 2
    assert f"{afile} is neither a run's id nor a run file (.convscope.db)" in _err(capsys)
    assert main(["export", f"{tmp_path}/", "--out", str(tmp_path / "out")]) == 2
    assert f"is a folder; pass a run's id with --logdir {tmp_path}/" in _err(capsys)
    assert main(["export", str(tmp_path / "gone.convscope.db"), "--out", str(tmp_path / "out")]) == 2
    err = _err(capsys)
    assert "does not exist; pass the path of a run's .convscope.db file" in err and "`convscope runs --logdir DIR`" in err
    assert main(["export", "my-run", "--logdir", str(tmp_path / "elsewhere"), "--out", str(tmp_path / "out")]) == 2
    err = _err(capsys)  # (the most common one: run from another folder than training's)
    assert f"no run 'my-run': the log directory {tmp_path / 'elsewhere'} does not exist here; pass --logdir the folder" in err
    assert not (tmp_path / "out").exists()


def test_export_of_a_kind_the_run_lacks_lists_the_kinds_it_has(tmp_path, capsys) -> None:
    # (it pointed at `convscope runs`, which does not list kinds)
    from convscope.frames import Frame
    from convscope.store import RunStore

    with RunStore(tmp_path).create_run("r") as w:
        for step in (1, 2):
            w.write(Frame(run="r", step=step, kind="scalar", payload={"name": "loss", "value": 0.5}))
    assert main(["export", "r", "--logdir", str(tmp_path), "--kind", "histogram", "--out", str(tmp_path / "out")]) == 2
    err = _err(capsys)
    assert "no frames of kind histogram in run 'r'" in err and "it holds steps 1 to 2; kinds scalar" in err
    assert "choose from these (--kind, --layer, --steps)" in err and "`convscope runs`" not in err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X displays are a Linux matter")
def test_paraview_without_a_display_says_to_use_xvfb(tmp_path, capsys, monkeypatch) -> None:
    # (ParaView died of SIGSEGV in XSync; all a user saw was its stack trace and exit status 245)
    vtk = tmp_path / "vtk"
    vtk.mkdir()
    (vtk / "weights-conv1.pvd").write_text("")
    pvpython = tmp_path / "pvpython"
    pvpython.write_text("#!/bin/sh\nkill -SEGV $$\n")  # (what ParaView's X render window does without a display)
    pvpython.chmod(0o755)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["paraview", "--open", str(vtk), "--pvpython", str(pvpython)]) == 2
    err = _err(capsys)
    assert "no display (DISPLAY is not set)" in err and "xvfb-run -a convscope paraview" in err
    monkeypatch.setenv("DISPLAY", ":99")  # (with a display, another failure is ParaView's own to tell)
    assert main(["paraview", "--open", str(vtk), "--pvpython", str(pvpython)]) != 0
    assert "xvfb-run" not in _err(capsys)


def test_paraview_data_extracts_need_no_display(tmp_path, capsys, monkeypatch) -> None:
    pvpython = tmp_path / "pvpython"
    pvpython.write_text("#!/bin/sh\nexit 3\n")
    pvpython.chmod(0o755)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    argv = ["paraview", "--run", "r", "--extracts", str(tmp_path / "pv"), "--no-png", "--pvpython", str(pvpython)]
    assert main(argv) == 3
    assert "xvfb-run" not in _err(capsys)


def test_model_help_names_every_extension_convscope_loads() -> None:
    import re

    from convscope.cli import MODEL_HELP
    from convscope.models._load import SUPPORTED_EXTENSIONS

    assert set(SUPPORTED_EXTENSIONS) <= set(re.findall(r"\.[a-z0-9]+\b", MODEL_HELP))


def test_the_cli_leaves_no_run_store_in_the_working_directory(tmp_path, monkeypatch, capsys) -> None:
    # (each mistake above is said before ./convscope-runs is made)
    monkeypatch.chdir(tmp_path)
    assert main(["runs"]) == 2
    assert main(["export", "r", "--out", "x"]) == 2
    capsys.readouterr()
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == []


def test_demo_opens_the_browser_as_training_starts(tmp_path, capsys, monkeypatch) -> None:
    # (it opened the "live" dashboard once training had ended: a record, not a live view)
    import webbrowser

    from convscope.store import RunStore

    opened: list[tuple[str, int | None]] = []

    def browser(url: str) -> bool:
        runs = RunStore(tmp_path).list_runs()
        opened.append((url, runs[0]["last_step"] if runs else None))
        return True

    monkeypatch.setattr(webbrowser, "open", browser)
    assert main(["demo", "--steps", "30", "--every", "10", "--logdir", str(tmp_path), "--exit", "--no-prune"]) == 0
    capsys.readouterr()
    [(url, last_step)] = opened
    assert "#/runs/lenet5-simplified-demo" in url
    assert last_step is None or last_step < 30, last_step  # (before the run's last step was recorded)
    assert RunStore(tmp_path).list_runs()[0]["last_step"] == 30
    assert main(["demo", "--steps", "10", "--logdir", str(tmp_path), "--exit", "--no-prune", "--no-browser"]) == 0
    assert len(opened) == 1
