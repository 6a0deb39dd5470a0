"""fused_linear_cross_entropy vs F.cross_entropy on materialised float32 logits (forward + backward).

Setup: hidden ``[N, H]`` and LM head ``[V, H]`` (float32 leaves that need gradients), 30 % of the
labels ignored (-100). Methods:

* ``naive``    -- ``F.cross_entropy(hidden @ W.T, labels)``: the full ``[N, V]`` float32 logits;
* ``compiled`` -- the same function under ``torch.compile`` (its first call, compilation included,
  is reported separately);
* ``ours``     -- ``swift_loss_zoo``'s ``fused_linear_cross_entropy``;
* ``matmuls``  -- only the three matmuls on the kept rows (logits, grad_h, grad_W): a floor, for reference;
* ``torch_lce`` -- torch's ``F.linear_cross_entropy`` (torch >= 2.13) with its default ``options=None``
  (the reference path: materialised logits);
* ``torch_lce_chunked`` -- the same with ``options=nn.LinearCrossEntropyOptions()`` (torch's chunked
  path, its own chunk size); ``torch_lce_our_rows`` -- chunked with our chunk rows;
* ``cce_compile`` -- Cut Cross-Entropy's ``impl="torch_compile"`` (``cut_cross_entropy/torch_compile.py``:
  drops ignored rows, compiles the rest; loaded without the package's Triton ``__init__``, see
  ``_peers.py``). Its first call (compilation) is reported like ``compiled``'s.

Methods whose package is missing are skipped with the reason (``nox -s benchmarks_peers`` installs them).

Peak = VmHWM above the resident set with the inputs alive, each configuration in a fresh process
(see ``_measure.py``); the gradients of hidden and W are part of every method's peak.

Run (heavy: take the lock):  ``flock /tmp/swiftzoo-heavy.lock python benchmarks/bench_fused_linear_ce.py``
Smoke run (seconds, asserts nothing about speed):  ``python benchmarks/bench_fused_linear_ce.py --quick``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _measure

RESULTS = Path(__file__).resolve().parent / "results" / "lm.md"
METHODS = ("naive", "compiled", "ours", "matmuls", "torch_lce", "torch_lce_chunked", "torch_lce_our_rows", "cce_compile")
COMPILING = ("compiled", "cce_compile")  # one process: the first (compiling) call, then the repetitions


# ---------------------------------------------------------------------------- worker side
def _inputs(config: dict[str, Any]):
    import torch

    gen = torch.Generator().manual_seed(config.get("seed", 0))
    rows, width, vocab = config["N"], config["H"], config["V"]
    hidden = torch.randn(rows, width, generator=gen).requires_grad_()
    weight = (torch.randn(vocab, width, generator=gen) * width**-0.5).requires_grad_()
    labels = torch.randint(0, vocab, (rows,), generator=gen)
    labels[torch.rand(rows, generator=gen) < config.get("ignored", 0.3)] = -100
    return hidden, weight, labels


def _step_function(method: str):
    import torch
    import torch.nn.functional as F

    if method == "naive":
        def step(hidden, weight, labels):
            loss = F.cross_entropy(hidden @ weight.t(), labels, ignore_index=-100)
            loss.backward()
            return loss
        return step
    if method == "compiled":
        compiled = torch.compile(lambda h, w, y: F.cross_entropy(h @ w.t(), y, ignore_index=-100))

        def step(hidden, weight, labels):
            loss = compiled(hidden, weight, labels)
            loss.backward()
            return loss
        return step
    if method == "ours":
        from swift_loss_zoo.lm import FusedLinearCrossEntropyLoss

        loss_fn = FusedLinearCrossEntropyLoss()

        def step(hidden, weight, labels):
            loss = loss_fn({"hidden_states": hidden, "lm_head_weight": weight}, labels)
            loss.backward()
            return loss
        return step
    if method == "matmuls":
        def step(hidden, weight, labels):
            with torch.no_grad():
                x = hidden[labels != -100]
                z = x @ weight.t()
                _ = z @ weight
                _ = z.t() @ x
            return None
        return step
    if method.startswith("torch_lce"):
        from torch import nn

        if not hasattr(F, "linear_cross_entropy"):
            message = f"torch {torch.__version__} has no F.linear_cross_entropy (torch >= 2.13)"
            raise ImportError(message)
        options = None
        if method == "torch_lce_chunked":
            options = nn.LinearCrossEntropyOptions()
        elif method == "torch_lce_our_rows":
            from swift_loss_zoo.lm._fused_linear_ce_function import default_chunk_rows

            options = "our_rows"

        def step(hidden, weight, labels):
            opts = (nn.LinearCrossEntropyOptions(batch_chunk_size=default_chunk_rows(weight.shape[0]))
                    if options == "our_rows" else options)
            loss = F.linear_cross_entropy(hidden, weight, labels, ignore_index=-100, options=opts)
            loss.backward()
            return loss
        return step
    if method == "cce_compile":
        from _peers import import_submodule

        cce = import_submodule("cut_cross_entropy", "torch_compile").torch_compile_linear_cross_entropy

        def step(hidden, weight, labels):
            loss = cce(hidden, weight, labels, ignore_index=-100)
            loss.backward()
            return loss
        return step
    message = f"unknown method {method!r}; expected one of {METHODS}"
    raise ValueError(message)


def flce_case(config: dict[str, Any]) -> dict[str, Any]:
    import torch

    method = config["method"]
    try:
        step = _step_function(method)
    except ImportError as exc:
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    result: dict[str, Any] = {}
    if method not in COMPILING:  # warm up kernels and thread pools on a tiny problem
        small = _inputs({**config, "N": 64, "H": 32, "V": 128})
        step(*small)
        del small
    hidden, weight, labels = _inputs(config)
    if method in COMPILING:
        start = time.perf_counter()
        step(hidden, weight, labels)
        result["first_call_s"] = time.perf_counter() - start
    holder: dict[str, Any] = {"calls": 0}

    def run() -> None:
        holder["loss"] = step(hidden, weight, labels)

    def cleanup() -> None:
        holder["calls"] += 1
        last = holder["calls"] == config["repeats"] + 1
        if last and config.get("dump") and holder.get("loss") is not None:
            torch.save({"loss": holder["loss"].detach(), "grad_h": hidden.grad, "grad_w": weight.grad},
                       config["dump"])
        hidden.grad = None
        weight.grad = None
        holder["loss"] = None

    result.update(_measure.measure(run, repeats=config["repeats"], cleanup=cleanup))
    return result


def interleaved_case(config: dict[str, Any]) -> dict[str, Any]:
    """Time only, every method in this one process on the same inputs, steps in a rotating order: on a
    shared machine the neighbours' load hits every method alike, so the ratios hold where separate
    processes' do not. Wall and CPU seconds (all threads) per step, medians; first calls (compilation)
    apart."""
    import time

    steps, first, skipped = {}, {}, {}
    for method in config["methods"]:
        try:
            steps[method] = _step_function(method)
        except ImportError as exc:
            skipped[method] = f"{type(exc).__name__}: {exc}"
    hidden, weight, labels = _inputs(config)

    def once(step: Any) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        step(hidden, weight, labels)
        hidden.grad = None
        weight.grad = None
        return time.perf_counter() - wall, time.process_time() - cpu

    for method, step in steps.items():
        first[method] = once(step)[0]
    walls: dict[str, list[float]] = {m: [] for m in steps}
    cpus: dict[str, list[float]] = {m: [] for m in steps}
    order = list(steps)
    for index in range(config["rounds"]):
        shift = index % len(order)
        for method in order[shift:] + order[:shift]:
            wall, cpu = once(steps[method])
            walls[method].append(wall)
            cpus[method].append(cpu)
    return {"first_s": first, "skipped": skipped, "walls": walls, "cpus": cpus,
            "wall_s": {m: _measure.median(v) for m, v in walls.items()},
            "cpu_s": {m: _measure.median(v) for m, v in cpus.items()}}


def interleaved_report(args: Any) -> None:
    """``--interleaved``: one process per shape, the methods' times side by side (see :func:`interleaved_case`)."""
    methods = tuple(args.only or ("ours", "cce_compile", "torch_lce_chunked", "torch_lce_our_rows", "compiled",
                                  "matmuls"))
    rows = []
    for vocab in args.vocab:
        shape = {"N": args.rows, "H": args.width, "V": vocab, "ignored": 0.3}
        result = _measure.run_worker(__file__, {"case": "interleaved", "methods": list(methods),
                                                "rounds": args.rounds, **shape})
        base_wall, base_cpu = result["wall_s"].get("ours"), result["cpu_s"].get("ours")
        for method in methods:
            label = f"{args.rows}x{args.width}x{vocab}"
            if method in result["skipped"]:
                rows.append([label, method, "-", "-", "-", "-", "-", f"skipped: {result['skipped'][method]}"])
                continue
            wall, cpu = result["wall_s"][method], result["cpu_s"][method]
            rows.append([label, f"**{method}**" if method == "ours" else method, args.rounds, f"{wall:.2f}",
                         f"{wall / base_wall:.2f}" if base_wall else "-", f"{cpu:.2f}",
                         f"{cpu / base_cpu:.2f}" if base_cpu else "-", f"{result['first_s'][method]:.1f}"])
            print(f"  {label} {method}: wall {[round(t, 2) for t in result['walls'][method]]}, "
                  f"cpu {[round(t, 2) for t in result['cpus'][method]]}", file=sys.stderr, flush=True)
    table = _measure.markdown_table(["N x H x V", "method", "rounds", "wall s (median)", "wall / ours",
                                     "CPU s (median)", "CPU / ours", "first call s"], rows)
    text = _measure.report_header("fused linear cross-entropy implementations, interleaved in one process") + (
        "\nForward + backward, float32, 30 % of labels ignored. All methods in one process on the same inputs, "
        "one step each per round in a rotating order, medians (time only: peak memory needs a process per method, "
        "see the table above). CPU = seconds of all threads, which a loaded machine stretches less than wall time. "
        "'first call' includes compilation for compiled and cce_compile.\n\n" + table + "\n")
    print(text)
    if not args.quick:
        _measure.write_section(Path(args.output or RESULTS), "bench_fused_linear_ce_interleaved", text)


# ---------------------------------------------------------------------------- parent side
def _differences(dumps: dict[str, str]) -> dict[str, dict[str, float]]:
    import torch

    naive = torch.load(dumps["naive"])
    out = {}
    for method, path in dumps.items():
        if method == "naive":
            continue
        other = torch.load(path)
        out[method] = {
            "loss": abs(float(other["loss"]) - float(naive["loss"])),
            "grad_h": float((other["grad_h"] - naive["grad_h"]).abs().max() / naive["grad_h"].abs().max()),
            "grad_w": float((other["grad_w"] - naive["grad_w"]).abs().max() / naive["grad_w"].abs().max()),
        }
        del other
    return out


def compare(shape: dict[str, int], methods: tuple[str, ...], rounds: int, tmp: str,
            check: bool = True) -> dict[str, Any]:
    """Interleaved rounds of fresh processes per method; medians; differences from naive (round 1)."""
    times: dict[str, list[float]] = {m: [] for m in methods}
    peaks: dict[str, list[float]] = {m: [] for m in methods}
    extra: dict[str, Any] = {"first_call_s": {}, "skipped": {}}
    dumps: dict[str, str] = {}
    for index in range(rounds):
        for method in methods:
            if method in extra["skipped"] or (method in COMPILING and index > 0):
                continue  # compiling methods: one process, `rounds` repetitions after the first (compiling) call
            repeats = rounds if method in COMPILING else 1
            dump = None
            if check and index == 0 and method != "matmuls":
                dump = os.path.join(tmp, f"{method}.pt")
                dumps[method] = dump
            config = {"case": "flce", "method": method, "repeats": repeats, "dump": dump, **shape}
            try:
                result = _measure.run_worker(__file__, config)
            except RuntimeError as exc:  # e.g. killed for memory: a row saying so, the others go on
                result = {"skipped": str(exc).splitlines()[0][:200]}
            if "skipped" in result:
                extra["skipped"][method] = result["skipped"]
                dumps.pop(method, None)
                print(f"  {shape} {method}: skipped ({result['skipped']})", file=sys.stderr, flush=True)
                continue
            times[method] += result["times_s"]
            peaks[method] += result["peaks_bytes"]
            if "first_call_s" in result:
                extra["first_call_s"][method] = result["first_call_s"]
            print(f"  {shape} {method} round {index + 1}: {result['time_s']:.2f} s, "
                  f"{_measure.fmt_mib(result['peak_bytes'])} MiB", file=sys.stderr, flush=True)
    summary = {m: {"time_s": _measure.median(times[m]), "peak_bytes": _measure.median(peaks[m]),
                   "times_s": times[m]} for m in methods if times[m]}
    if check and "naive" in dumps:
        extra["diffs"] = _differences(dumps)
        for path in dumps.values():
            os.remove(path)
    return {"summary": summary, **extra}


SCALING_METHODS = ("naive", "ours", "torch_lce_chunked")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one round, no compile, no results file")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions for V <= 32000")
    parser.add_argument("--big-rounds", type=int, default=1, help="repetitions for V > 32000")
    parser.add_argument("--vocab", type=int, nargs="+", default=[32000, 128256])
    parser.add_argument("--rows", type=int, default=8192)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--only", nargs="+", choices=METHODS, help="methods to run (naive is always run: the reference)")
    parser.add_argument("--no-compile", action="store_true", help="skip the methods that compile (compiled, cce_compile)")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--interleaved", action="store_true",
                        help="time only: the methods (--only, default ours and the chunked/compiled ones) in one "
                             "process per V, interleaved -> section bench_fused_linear_ce_interleaved")
    parser.add_argument("--output", default=None, help=f"markdown file to update (default {RESULTS}; none with --quick)")
    parser.add_argument("--section", default="bench_fused_linear_ce", help="key of the section of --output to replace")
    parser.add_argument("--title", default="fused_linear_cross_entropy vs materialised logits and other implementations")
    args = parser.parse_args()
    if args.interleaved:
        interleaved_report(args)
        return

    if args.quick:
        shapes = [{"N": 512, "H": 64, "V": 1000}]
        methods = tuple(m for m in METHODS if m not in COMPILING)
        scaling: list[dict[str, int]] = []
        rounds_for = {1000: 1}
    else:
        shapes = [{"N": args.rows, "H": args.width, "V": v} for v in args.vocab]
        methods = tuple(m for m in METHODS if not (args.no_compile and m in COMPILING))
        scaling = [] if args.no_scaling else [{"N": n, "H": args.width, "V": v}
                                               for n in (1024, 4096) for v in (8192, 65536)]
        rounds_for = {v: (args.rounds if v <= 32000 else args.big_rounds) for v in args.vocab}
    if args.only:
        methods = tuple(m for m in methods if m in args.only or m == "naive")
    scaling_methods = tuple(m for m in SCALING_METHODS if m in methods)
    output = None if args.quick and args.output is None else Path(args.output or RESULTS)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_flce_") as tmp:
        main_results = []
        for shape in shapes:
            rounds = rounds_for.get(shape["V"], args.rounds)
            outcome = compare({**shape, "ignored": 0.3}, methods, rounds, tmp)
            main_results.append((shape, rounds, outcome))
        scaling_results = []
        for shape in scaling:
            outcome = compare({**shape, "ignored": 0.3}, scaling_methods, 2, tmp, check=False)
            scaling_results.append((shape, outcome))

    for shape, rounds, outcome in main_results:
        s = outcome["summary"]
        naive, ours = s.get("naive"), s.get("ours")
        for method in methods:
            label = f"{shape['N']}x{shape['H']}x{shape['V']}"
            if method not in s:
                reason = outcome["skipped"].get(method, "no result")
                rows.append([label, method, "-", "-", "-", "-", "-", "-", "-", "-", f"skipped: {reason}"])
                continue
            m = s[method]
            diff = outcome.get("diffs", {}).get(method)
            memory = method != "matmuls"
            rows.append([
                label, f"**{method}**" if method == "ours" else method, rounds, f"{m['time_s']:.2f}",
                f"{m['time_s'] / naive['time_s']:.2f}" if naive else "-",
                f"{m['time_s'] / ours['time_s']:.2f}" if ours else "-",
                _measure.fmt_mib(m["peak_bytes"]) if memory else "-",
                f"{m['peak_bytes'] / ours['peak_bytes']:.2f}" if memory and ours else "-",
                f"{diff['loss']:.1e}" if diff else "-",
                f"{diff['grad_h']:.1e} / {diff['grad_w']:.1e}" if diff else "-",
                f"{outcome['first_call_s'][method]:.1f}" if method in outcome["first_call_s"] else "",
            ])
    header = ["N x H x V", "method", "reps", "time s (median)", "time / naive", "time / ours",
              "peak MiB above baseline", "peak / ours", "abs loss diff vs naive", "max grad diff / max grad (h / W)",
              "first call s (compilation)"]
    table = _measure.markdown_table(header, rows)
    scaling_rows = []
    for shape, outcome in scaling_results:
        s = outcome["summary"]
        if "ours" not in s:
            continue
        row = [shape["N"], shape["V"], f"{shape['N'] * shape['V'] * 4 / 2**20:,.0f}", f"{s['ours']['time_s']:.2f}",
               _measure.fmt_mib(s["ours"]["peak_bytes"])]
        for method in scaling_methods:
            if method == "ours":
                continue
            if method in s:
                row += [f"{s[method]['time_s'] / s['ours']['time_s']:.2f}",
                        f"{s[method]['peak_bytes'] / s['ours']['peak_bytes']:.2f}"]
            else:
                row += ["skipped", "skipped"]
        scaling_rows.append(row)
    others = [m for m in scaling_methods if m != "ours"]
    scaling_header = ["N", "V", "fp32 logits MiB", "ours s", "ours peak MiB"]
    for method in others:
        scaling_header += [f"{method} time / ours", f"{method} peak / ours"]
    scaling_table = _measure.markdown_table(scaling_header, scaling_rows) if scaling_rows else ""

    text = _measure.report_header(args.title) + (
        "\nForward + backward, float32, H as given, 30 % of labels ignored, no bias. Peak = VmHWM above the "
        "resident set with inputs alive (gradients included), fresh process per run, "
        "`MALLOC_MMAP_THRESHOLD_=1048576`; medians. Methods are interleaved, one process per repetition; the "
        "compiling ones (compiled, cce_compile) run their repetitions in one process after their first call "
        "(whose time, compilation included, is the last column). Differences: against naive, from the first "
        "repetition.\n\n" + table + "\n"
    )
    if scaling_table:
        text += f"\nScaling (H = {args.width}, 2 repetitions each):\n\n{scaling_table}\n"
    print(text)
    if output is not None:
        _measure.write_section(output, args.section, text)
        print(f"written to {output}", file=sys.stderr)


if __name__ == "__main__":
    if not _measure.worker_main({"flce": flce_case, "interleaved": interleaved_case}):
        main()
