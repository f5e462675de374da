"""Run the benches, write `.bench/results.md`, compare with the saved baseline.

    bench/run.py                    every bench in bench/test_*.py, full rounds   (make bench)
    bench/run.py --quick            the CI subset: `-m "quick or ratio"`, fewer rounds (make bench-ci)
    bench/run.py --save-baseline    full run, then keep its JSON as bench/baseline/baseline.json
    bench/run.py -- -k cold_start   anything after `--` goes to pytest

The exit code is pytest's, so a ratio bar that fails fails CI. Regressions against the baseline
(median time more than 25 % slower, or a throughput or latency figure in extra_info 25 % worse) are
printed as REGRESSION lines and never fail the run: the baseline may come from another machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / ".bench"
RESULTS_MD = OUT_DIR / "results.md"
BASELINE = ROOT / "bench" / "baseline" / "baseline.json"
QUICK_ENV = "OWNCAST_FAST_BENCH_QUICK"
QUICK_SELECTION = "quick or ratio"
REGRESSION_THRESHOLD = 0.25  # fraction of the baseline; this machine's run-to-run noise is ~10 %


def pytest_command(json_path: Path, quick: bool, extra: list[str]) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "bench/",
        "--benchmark-enable",  # pyproject's addopts disable benchmarks for the unit suite
        f"--benchmark-json={json_path}",
        "--benchmark-sort=fullname",
        "-p",
        "no:cacheprovider",
        # With warnings as errors, a selection without benchmarks would end in an INTERNALERROR.
        "-W",
        "ignore:Not saving anything:pytest_benchmark.logger.PytestBenchmarkWarning",
    ]
    if quick:
        command += ["-m", QUICK_SELECTION]
    return command + extra


def format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}" if seconds / scale < 100 else f"{seconds / scale:.0f} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_value(value: Any) -> str:
    if not isinstance(value, float):
        return str(value).replace("|", "\\|")
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"


def short_name(bench: dict[str, Any]) -> str:
    return str(bench["fullname"]).removeprefix("bench/")


def is_ratio_key(key: str) -> bool:
    return ("ratio" in key or "speedup" in key) and not key.endswith("_bar")


def metric_direction(key: str) -> int:
    """+1 if a bigger extra_info number is better, -1 if smaller is, 0 if it is not compared.

    By name: `*_per_s` / `*mb_s` / `*ops` are rates, `*_ms` / `*_s` / `*_mb` / `*_per_req` are costs. Bars,
    counts, ratios (whose direction varies) and the reference's own figures are not compared.
    """
    if "_bar" in key or key.startswith("reference") or is_ratio_key(key):
        return 0
    if key.endswith(("_per_s", "mb_s", "ops")) or "per_s" in key:
        return 1
    if key.endswith(("_ms", "_s", "_mb", "_per_req")):
        return -1
    return 0


def compare(current: dict[str, Any], baseline: dict[str, Any]) -> tuple[dict[str, float], list[str]]:
    """Median change per bench (fraction) and the REGRESSION lines."""
    base_by_name = {b["fullname"]: b for b in baseline.get("benchmarks", [])}
    changes: dict[str, float] = {}
    regressions: list[str] = []
    for bench in current.get("benchmarks", []):
        base = base_by_name.get(bench["fullname"])
        if base is None:
            continue
        name = short_name(bench)
        now_median, then_median = bench["stats"]["median"], base["stats"]["median"]
        if then_median > 0:
            change = now_median / then_median - 1
            changes[bench["fullname"]] = change
            if change > REGRESSION_THRESHOLD:
                regressions.append(
                    f"REGRESSION {name}: median {format_seconds(now_median)} vs baseline "
                    f"{format_seconds(then_median)} ({change:+.0%})"
                )
        base_info = base.get("extra_info", {})
        for key, value in bench.get("extra_info", {}).items():
            direction = metric_direction(key)
            then = base_info.get(key)
            if (
                direction == 0
                or isinstance(value, bool)
                or not isinstance(value, int | float)
                or not isinstance(then, int | float)
                or then <= 0
            ):
                continue
            worse = (then - value) / then if direction > 0 else (value - then) / then
            if worse > REGRESSION_THRESHOLD:
                regressions.append(
                    f"REGRESSION {name}: {key} {format_value(value)} vs baseline {format_value(then)} "
                    f"({worse:.0%} worse)"
                )
    return changes, regressions


def baseline_json(data: dict[str, Any]) -> str:
    """The run's JSON without each round's raw timings: the statistics are what gets compared."""
    kept = dict(data)
    kept["benchmarks"] = [
        {**bench, "stats": {k: v for k, v in bench["stats"].items() if k != "data"}}
        for bench in data.get("benchmarks", [])
    ]
    return json.dumps(kept, indent=1) + "\n"


def machine_line(data: dict[str, Any]) -> str:
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {})
    brand = cpu.get("brand_raw") or machine.get("processor") or "unknown CPU"
    cores = cpu.get("count", "?")
    return f"{brand}, {cores} cores, Python {machine.get('python_version', '?')}"


def render(data: dict[str, Any], quick: bool, changes: dict[str, float], baseline_note: str) -> str:
    commit = data.get("commit_info", {})
    lines = [
        f"# Bench results: {data.get('datetime', '?')}",
        "",
        f"{'quick (CI subset)' if quick else 'full'} run; commit {str(commit.get('id', '?'))[:12]}"
        f"{' (dirty)' if commit.get('dirty') else ''}; {machine_line(data)}.",
        "",
        "| bench | mean | median | ops/s | rounds | vs baseline | extra_info |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    ratio_rows: list[str] = []
    for bench in data.get("benchmarks", []):
        stats = bench["stats"]
        info: dict[str, Any] = bench.get("extra_info", {})
        change = changes.get(bench["fullname"])
        extra = ", ".join(f"{k}={format_value(v)}" for k, v in info.items())
        lines.append(
            f"| {short_name(bench)} | {format_seconds(stats['mean'])} | {format_seconds(stats['median'])} "
            f"| {stats['ops']:.4g} | {stats['rounds']} | {'' if change is None else f'{change:+.0%}'} "
            f"| {extra} |"
        )
        for key, value in info.items():
            if is_ratio_key(key):
                bar = info.get(f"{key}_bar", "")
                ratio_rows.append(f"| {short_name(bench)} | {key} | {format_value(value)} | {format_value(bar)} |")
    if ratio_rows:
        lines += [
            "",
            "## Side-by-side ratios (ours / reference, measured in this run)",
            "",
            "| bench | ratio | value | bar |",
            "|---|---|---:|---:|",
            *ratio_rows,
        ]
    lines += ["", baseline_note, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the owncast-fast benches.")
    parser.add_argument("--quick", action="store_true", help='CI subset: -m "quick or ratio", fewer rounds')
    parser.add_argument(
        "--save-baseline", action="store_true", help=f"keep this run's JSON as {BASELINE.relative_to(ROOT)}"
    )
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (put them after `--`)")
    args = parser.parse_args(argv)
    if args.save_baseline and args.quick:
        parser.error("--save-baseline needs a full run: the quick subset has fewer benches and rounds")

    OUT_DIR.mkdir(exist_ok=True)
    json_path = OUT_DIR / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    env = dict(os.environ)
    if args.quick:
        env[QUICK_ENV] = "1"
    else:
        env.pop(QUICK_ENV, None)
    command = pytest_command(json_path, args.quick, args.pytest_args)
    print("$", " ".join(command), flush=True)
    returncode = subprocess.call(command, cwd=ROOT, env=env)

    if not json_path.exists():
        print(f"no benchmark JSON was written (pytest exit code {returncode})", file=sys.stderr)
        return returncode or 1
    data = json.loads(json_path.read_text())

    changes: dict[str, float] = {}
    regressions: list[str] = []
    if BASELINE.exists():
        baseline = json.loads(BASELINE.read_text())
        changes, regressions = compare(data, baseline)
        note = f"Compared with {BASELINE.relative_to(ROOT)} ({baseline.get('datetime', '?')}, "
        note += f"{machine_line(baseline)})."
        if machine_line(baseline) != machine_line(data):
            note += " Another machine: differences may be the hardware, not the code."
    else:
        note = f"No baseline at {BASELINE.relative_to(ROOT)}: `bench/run.py --save-baseline` records one."
    markdown = render(data, args.quick, changes, note)
    RESULTS_MD.write_text(markdown)
    print()
    print(markdown)
    print(f"JSON: {json_path.relative_to(ROOT)}  markdown: {RESULTS_MD.relative_to(ROOT)}")

    if args.save_baseline:
        if returncode == 0:
            BASELINE.parent.mkdir(parents=True, exist_ok=True)
            BASELINE.write_text(baseline_json(data))
            print(f"baseline saved: {BASELINE.relative_to(ROOT)}")
        else:
            print(f"baseline NOT saved: pytest exit code {returncode}", file=sys.stderr)
    for line in regressions:
        print(line)
    return returncode


if __name__ == "__main__":
    sys.exit(main())
