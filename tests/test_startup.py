"""Start-up (issue #18): what ``import cje`` and a small analysis load, and the light paths that
keep it so give the numbers the libraries give.

The import budget is pinned structurally — which modules a fresh process has loaded — never by
time (``benchmarks/startup.py`` measures the time). Every light path is checked against the
library it stands in for: :func:`cje._lite.isotonic_regression` and :class:`cje._lite.BSpline`
bit for bit against scipy, :func:`cje.readers.read_small_columns` against the polars reader,
the small-input factorizations against pandas, and whole analyses against the same analyses
forced through the libraries.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cje
import cje._lite as lite
from cje import data as cje_data
from cje import readers
from cje.data import _columns_of, _wanted
from cje.errors import CJEInputError

ROOT = Path(__file__).resolve().parents[1]

#: Never loaded by ``import cje``.
HEAVY = ("numpy", "scipy", "pandas", "polars", "pyarrow", "matplotlib", "statsmodels", "sklearn",
         "tqdm", "joblib")
#: Never loaded by a direct analysis of a few thousand rows of JSON Lines (the CLI included).
#: No scipy at all: the t distribution is :mod:`cje._tdist`, the calibration's fits :mod:`cje._lite`.
NOT_FOR_SMALL_DIRECT = ("pandas", "polars", "pyarrow", "matplotlib", "statsmodels", "sklearn",
                        "scipy", "tqdm", "joblib", "cje.monitoring", "cje.pipeline.logged", "cje.plots",
                        "cje.synthetic", "cje.montecarlo")


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code`` (this checkout first)."""
    probe = code + "\nimport sys, json\nprint('\\nMODULES' + json.dumps(sorted(sys.modules)))\n"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         check=True, cwd=ROOT).stdout
    return set(json.loads(out.rsplit("MODULES", 1)[1]))


def _which(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` are loaded, and any study module (the CLI's parser lists the studies:
    their package is light, the studies are not)."""
    return [n for n in names if n in loaded] + sorted(m for m in loaded if m.startswith("cje.studies."))


# --------------------------------------------------------------------------------------------
# The import budget
# --------------------------------------------------------------------------------------------
def test_import_cje_loads_no_heavy_library() -> None:
    loaded = _loaded_after("import cje")
    assert _which(loaded, HEAVY) == []
    assert sorted(m for m in loaded if m.startswith("cje")) == ["cje"]


def test_public_names_resolve_on_first_use() -> None:
    loaded = _loaded_after("import cje\nassert cje.Report.__name__ == 'Report'\n"
                           "from cje import analyze, load, CJEInputError\n"
                           "assert callable(analyze) and callable(load)\n")
    assert "cje.report" in loaded and "cje.monitoring" not in loaded
    assert set(cje.__all__) <= set(dir(cje))
    for name in cje.__all__:
        assert getattr(cje, name) is not None, name
    assert isinstance(cje.__version__, str) and cje.__version__
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        cje.nonsense  # noqa: B018


@pytest.mark.parametrize("mode", ["auto", "monotone"])
def test_cli_analysis_of_fresh_draws_loads_only_what_it_needs(arena: Path, mode: str) -> None:
    code = ("import runpy, sys, contextlib, io\n"
            f"sys.argv = ['cje', 'analyze', {str(arena / 'fresh_draws')!r}, '--mode', {mode!r}]\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            "        runpy.run_module('cje.cli', run_name='__main__')\n"
            "    except SystemExit as e:\n"
            "        assert not e.code, e.code\n")
    loaded = _loaded_after(code)
    assert "cje.pipeline.direct" in loaded  # the analysis did run
    assert _which(loaded, NOT_FOR_SMALL_DIRECT) == []


def test_direct_call_in_monotone_mode_loads_no_spline_and_no_optimizer(arena: Path) -> None:
    loaded = _loaded_after(f"import cje\nr = cje.analyze({str(arena / 'fresh_draws')!r}, "
                           "mode='monotone')\nassert r.estimates\n")
    assert _which(loaded, NOT_FOR_SMALL_DIRECT) == []


# --------------------------------------------------------------------------------------------
# The light stand-ins against scipy, bit for bit
# --------------------------------------------------------------------------------------------
@pytest.fixture
def light(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the light paths although this process has loaded scipy."""
    monkeypatch.setattr(lite, "SCIPY_IF_LOADED", False)


def _random_responses(rng: np.random.Generator, t: int) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(1, 80))
    kind = t % 4
    if kind == 0:
        y = rng.normal(size=n)
    elif kind == 1:  # many exact ties, equal neighbours pooled or not
        y = rng.integers(0, 4, n).astype(float)
    elif kind == 2:
        y = np.round(rng.uniform(size=n), 2)
    else:  # nearly sorted: long blocks
        y = np.sort(rng.normal(size=n)) + rng.normal(scale=0.3, size=n)
    w = rng.integers(1, 6, n).astype(float) if t % 3 else rng.uniform(0.05, 3.0, n)
    return y, w


def test_isotonic_regression_is_scipys_bit_for_bit(light: None) -> None:
    from scipy.optimize import isotonic_regression

    rng = np.random.default_rng(18)
    for t in range(3000):
        y, w = _random_responses(rng, t)
        inc = bool(t % 5)
        want = isotonic_regression(y, weights=w, increasing=inc).x
        got = lite.isotonic_regression(y, weights=w, increasing=inc)
        assert type(got) is lite._Fit  # the light path ran
        assert got.x.tobytes() == want.tobytes(), (y, w, inc)
    y = rng.normal(size=lite.PAVA_MAX)  # the largest input fitted in Python
    assert lite.isotonic_regression(y).x.tobytes() == isotonic_regression(y).x.tobytes()


def test_isotonic_regression_hands_large_inputs_to_scipy(light: None) -> None:
    y = np.random.default_rng(0).normal(size=lite.PAVA_MAX + 1)
    assert type(lite.isotonic_regression(y)) is not lite._Fit


def _knots(rng: np.random.Generator, t: int) -> np.ndarray:
    nk = int(rng.integers(2, 9))
    if t % 2:
        br = np.unique(np.quantile(rng.normal(size=50), np.linspace(0, 1, nk)))
    else:  # repeated breakpoints from rounding: zero-length intervals
        br = np.unique(np.round(rng.uniform(size=nk), 1))
    return np.r_[np.repeat(br[0], 3), br, np.repeat(br[-1], 3)] if br.size >= 2 else np.array([])


def test_bspline_is_scipys_bit_for_bit(light: None) -> None:
    from scipy.interpolate import BSpline

    rng = np.random.default_rng(18)
    checked = 0
    for t in range(400):
        knots = _knots(rng, t)
        if not knots.size:
            continue
        x = np.clip(np.r_[rng.normal(size=200), knots], knots[3], knots[-4])  # knots themselves too
        c = rng.normal(size=knots.size - 4)
        assert (lite.BSpline(knots, c, 3)(x).tobytes() == BSpline(knots, c, 3)(x).tobytes())
        got = lite.BSpline.design_matrix(x, knots, 3)
        assert isinstance(got, lite._Dense)
        assert got.toarray().tobytes() == BSpline.design_matrix(x, knots, 3).toarray().tobytes()
        checked += 1
    assert checked > 300


def test_bspline_outside_the_base_interval_is_scipys_business(light: None) -> None:
    knots = np.r_[0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError):  # scipy's own refusal
        lite.BSpline.design_matrix(np.array([2.0]), knots, 3)


# --------------------------------------------------------------------------------------------
# The small JSON Lines reader against the polars reader
# --------------------------------------------------------------------------------------------
def _both(path: Path, covariates: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    want = _wanted(list(covariates))
    small = readers.read_small_columns(path, want=want, id_columns=readers.ID_COLUMNS)
    full = _columns_of(readers.read_table(path, want=want, id_columns=readers.ID_COLUMNS))
    # complete string columns come as pandas Arrow string arrays (issue #18): as numpy they are
    # the object arrays of str that read_table's to_numpy() gave
    return small, {k: np.asarray(v) for k, v in full.items()}


def _assert_same_columns(small: dict[str, Any], full: dict[str, Any]) -> None:
    assert list(small) == list(full)
    for k in full:
        a, b = small[k], full[k]
        assert a.dtype == b.dtype, k
        if a.dtype == object:
            assert a.tolist() == b.tolist(), k
        else:
            assert a.tobytes() == b.tobytes(), k


def _write(path: Path, lines: list[str] | str) -> Path:
    path.write_bytes((lines if isinstance(lines, str) else "\n".join(lines) + "\n").encode())
    return path


def test_small_reader_equals_polars_reader_on_the_arena(arena: Path) -> None:
    for path in (arena / "fresh_draws", arena / "probe_slice" / "clone_probe.jsonl"):
        small, full = _both(path)
        assert small is not None
        _assert_same_columns(small, full)


def test_small_reader_equals_polars_reader_on_awkward_plain_files(tmp_path: Path) -> None:
    d = tmp_path / "fresh"
    d.mkdir()
    _write(d / "a_responses.jsonl", [
        '{"prompt_id": "p1", "judge_score": 7, "oracle_label": null, "draw_idx": 0, "x": [1, {}]}',
        "",
        '   ',
        '{"prompt_id": "p2", "judge_score": -0.0, "oracle_label": 0.1, "draw_idx": 1}',
        '{"prompt_id": "p\\u00e9", "judge_score": 4.9e-324, "policy": "ignored", "extra": "NaN"}',
    ])
    (d / "b_responses.jsonl").write_bytes(  # BOM, CRLF, no final line end, a covariate
        b'\xef\xbb\xbf{"prompt_id": "p1", "judge_score": 0.5, "response_length": 12}\r\n'
        b'{"prompt_id": "p3", "judge_score": 1e-5, "response_length": 3.5, "oracle_label": 1}')
    for cov in ((), ("response_length",)):
        small, full = _both(d, cov)
        assert small is not None
        _assert_same_columns(small, full)
    single = _write(tmp_path / "one.jsonl", ['{"prompt_id": "a", "policy": "m", "judge_score": 1}',
                                             '{"prompt_id": "b", "policy": null, "judge_score": 2}'])
    small, full = _both(single)
    assert small is not None
    _assert_same_columns(small, full)


@pytest.mark.parametrize("line", [
    '{"prompt_id": 7, "judge_score": 1}',  # number id: its exact text, by the polars path
    '{"prompt_id": ["a"], "judge_score": 1}',  # refused by the polars path
    '{"prompt_id": "a", "judge_score": true}',
    '{"prompt_id": "a", "judge_score": "1"}',
    '{"prompt_id": "a", "judge_score": 1, "judge_score": 2}',  # polars keeps the first
    '{"prompt_id": "a", "judge_score": 1, "x": 1e400}',  # polars refuses the line
    '{"prompt_id": "a", "judge_score": NaN}',
    '{"prompt_id": "\\ud800", "judge_score": 1}',  # a lone surrogate
    '{"prompt_id": "a", "judge_score": 1, "draw_idx": 1.0}',
    '{"prompt_id": "a", "judge_score": 18014398509481985}',  # beyond 2**53
    '["a", 1]',
    '{"prompt_id": "a", "judge_score": 1',
])
def test_small_reader_leaves_anything_unusual_to_the_polars_path(tmp_path: Path, line: str) -> None:
    path = _write(tmp_path / "x.jsonl", ['{"prompt_id": "z", "judge_score": 0.5}', line])
    assert readers.read_small_columns(path, want=_wanted([])) is None


def test_small_reader_tells_logged_data_by_the_first_record_as_polars_does(tmp_path: Path) -> None:
    logged = '{"metadata": {"prompt_id": "a"}, "judge_score": 1}'
    path = _write(tmp_path / "x.jsonl", [logged, '{"prompt_id": "z", "judge_score": 0.5}'])
    assert readers.read_small_columns(path, want=_wanted([])) is None
    for later in (logged, '{"unrelated": 1}'):  # read with the wanted schema: extra fields unread
        path = _write(tmp_path / "x.jsonl", ['{"prompt_id": "z", "judge_score": 0.5}', later])
        small, full = _both(path)
        assert small is not None
        _assert_same_columns(small, full)


def test_small_reader_leaves_large_inputs_and_other_formats_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "x.jsonl", ['{"prompt_id": "a", "judge_score": 0.5}'] * 10)
    assert readers.read_small_columns(path, want=_wanted([])) is not None
    monkeypatch.setattr(readers, "_SMALL_LINES", 9)
    assert readers.read_small_columns(path, want=_wanted([])) is None
    monkeypatch.setattr(readers, "_SMALL_LINES", 100)
    monkeypatch.setattr(readers, "_SMALL_BYTES", 100)
    assert readers.read_small_columns(path, want=_wanted([])) is None
    csv = tmp_path / "x.csv"
    csv.write_text("prompt_id,judge_score\na,0.5\n")
    assert readers.read_small_columns(csv, want=_wanted([])) is None
    assert readers.read_small_columns(tmp_path / "missing.jsonl", want=_wanted([])) is None


def test_load_errors_are_the_polars_paths(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.jsonl", ['{"prompt_id": "a", "judge_score": 0.5}',
                                         '{"prompt_id": ["a"], "judge_score": 1}'])
    with pytest.raises(CJEInputError, match=r"line 2: 'prompt_id' is a list"):
        cje.load(path)
    _write(tmp_path / "x.jsonl", ['{"prompt_id": "a", "judge_score": 0.5}', '{"prompt_id": "a", '])
    with pytest.raises(CJEInputError, match="line 2"):
        cje.load(path)


# --------------------------------------------------------------------------------------------
# Whole analyses: light paths against the libraries
# --------------------------------------------------------------------------------------------
def _numbers(report: Any) -> dict[str, Any]:
    d = json.loads(report.to_json())
    d.pop("provenance", None)
    return d


def _libraries_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lite, "PAVA_MAX", -1)
    monkeypatch.setattr(lite, "BSPLINE_MAX", -1)
    monkeypatch.setattr(cje_data, "_SMALL_IDS", -1)
    monkeypatch.setattr(readers, "_SMALL_LINES", -1)
    monkeypatch.setattr("cje.pipeline.core._SMALL_ROWS", -1)


def _analyses(arena: Path) -> dict[str, Any]:
    sim = cje.synthetic.make_direct_eval(400, rng=5)
    probes = {p: arena / "probe_slice" / f"{p}_probe.jsonl" for p in ("clone", "unhelpful")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "arena_auto": _numbers(cje.analyze(arena / "fresh_draws", probes=probes)),
            "arena_two_stage": _numbers(cje.analyze(arena / "fresh_draws", mode="two_stage")),
            "arena_calibrated_ips": _numbers(cje.analyze(arena / "logged_data.jsonl",
                                                         estimator="calibrated-ips")),
            "synthetic_covariate": _numbers(cje.analyze(
                sim.data, judge_scale=(0, 10), label_scale=(1, 5),
                covariates=["response_length"], mode="two_stage")),
            "synthetic_no_draw_idx": _numbers(cje.analyze(
                sim.data.drop(columns="draw_idx"), judge_scale=(0, 10), label_scale=(1, 5))),
        }


def test_analyses_equal_those_through_the_libraries(
        arena: Path, light: None, monkeypatch: pytest.MonkeyPatch) -> None:
    got = _analyses(arena)
    with monkeypatch.context() as m:
        _libraries_only(m)
        want = _analyses(arena)
    assert got == want  # floats through JSON: exact


def test_factorize_ids_is_pandas_factorize() -> None:
    import pandas as pd

    for values in (["b", "a", "b", "c", "a"], [3, 1, 3, 2], ["x"]):
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        codes, uniq = cje_data.factorize_ids(arr)
        pc, pu = pd.factorize(arr)
        assert codes.tolist() == pc.tolist() and list(uniq) == list(pu)
    mixed = np.array(["a", 1, None], dtype=object)  # not all one type: pandas decides
    assert cje_data._factorize_small_str(mixed, (str, int)) is None


def test_small_and_pandas_id_cleaning_refuse_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = {"prompt_id": ["a", " a", "b"], "policy": ["m", "m", "m"], "judge_score": [1, 2, 3]}
    with pytest.raises(CJEInputError) as small:
        cje.load(rows, judge_scale=(0, 5))
    monkeypatch.setattr(cje_data, "_SMALL_IDS", -1)
    with pytest.raises(CJEInputError) as full:
        cje.load(rows, judge_scale=(0, 5))
    assert str(small.value) == str(full.value)


def test_distinct_rows_small_path_is_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    from cje.pipeline import core

    s = np.array([0.5, 0.2, 0.5, -0.0, 0.0, 0.2, 1e-300])
    codes, uniq, _ = core.distinct_rows(s, None)
    monkeypatch.setattr(core, "_SMALL_ROWS", -1)
    pc, pu, _ = core.distinct_rows(s, None)
    assert codes.tolist() == pc.tolist() and uniq.tobytes() == pu.tobytes()
    assert not math.isnan(uniq.sum())


def test_json_reader_serves_a_budget_then_polars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    # read_columns uses the json reader while polars is not loaded and json has read less than
    # _JSON_BUDGET bytes in the process (rent or buy: then importing polars is cheaper); both
    # readers give the same columns
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps({"prompt_id": f"p{i}", "policy": "a", "judge_score": i % 7})
                            + "\n" for i in range(50)))
    size = path.stat().st_size
    calls: list[int] = []
    real = readers.read_small_columns

    def spy(*a: Any, **k: Any) -> Any:
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(readers, "read_small_columns", spy)
    monkeypatch.setattr(cje_data, "sys", type("S", (), {"modules": {}})())  # polars "not loaded"
    monkeypatch.setattr(cje_data, "_JSON_BUDGET", size)
    monkeypatch.setattr(cje_data, "_JSON_READ", [0])
    first = cje_data.read_columns(path)
    assert calls == [1] and cje_data._JSON_READ == [size]
    second = cje_data.read_columns(path)  # the budget is spent: polars reads
    assert calls == [1]
    assert first.keys() == second.keys()
    for k in first:
        assert np.array_equal(np.asarray(first[k]), np.asarray(second[k])), k
    monkeypatch.setattr(cje_data, "_JSON_READ", [0])
    monkeypatch.setattr(cje_data, "sys", sys)  # polars loaded (it is, in this process): polars reads
    assert "polars" in sys.modules
    cje_data.read_columns(path)
    assert calls == [1]
