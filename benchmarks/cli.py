"""``python -m benchmarks [--quick] [--pools] [--profile]``: every scenario in one run, a table, ``results/latest.json``.

Starts its own redis-server, sandboxes and workers on 127.0.0.1 and ends all
of them on exit, on SIGTERM and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import failover, held, intake, notify, redis_cost, redis_instructions, report
from benchmarks.console import run_console
from benchmarks.deferred import run_deferred
from benchmarks.drain import quietly, run_drain
from benchmarks.enqueue import run_enqueue
from benchmarks.figures import spread, with_spread
from benchmarks.latency import run_latency
from benchmarks.pacing import SYSTEMS as PACING_SYSTEMS
from benchmarks.pacing import run_fair_share, run_pacing
from benchmarks.pools import parse_shape, run_pools
from benchmarks.processes import LoadMeter, stop_all
from benchmarks.profiling import run_profile
from benchmarks.report import Row, fmt
from benchmarks.stack import Stack
from benchmarks.storm import run_storm
from benchmarks.workers import PAYQ_TREE, Shape
from config.settings import Settings
from tasks.pacing.rules import BETA as PACE_BETA
from tasks.pacing.rules import CONFIGURED_SHARE as PACE_CONFIGURED_SHARE

SCENARIOS = ("drain", "enqueue", "latency", "storm", "deferred", "console", "pacing", "fairness", "intake", "notify", "failover",
             "held", "redis", "instructions")
LATENCIES = (0.0, 50.0)
# Dramatiq's fastest shapes measured here: 2 processes x 8 threads at 0 ms; at 50 ms 8 threads a process cap it
# at 2 x 8 / 0.05 s = 320 calls/s, and 2 x 32 drained fastest.
DRAMATIQ_SHAPES = {0.0: Shape("threads", 8, 2), 50.0: Shape("threads", 32, 2)}


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does."""

    captures: int
    enqueue_single: int
    enqueue_bulk: int
    latency_seconds: float
    storm: int
    deferred: int
    short_delay: float
    deferred_run: int
    pool_captures: int
    pacing: int
    console_entries: int = 10_000  # the issue's figure: the console's list stays fast with this many dead letters
    rounds: int = 1  # drains (and notify's on/off pairs) repeated, alternating: the median is the figure, beside its spread


FULL = Sizes(captures=20_000, enqueue_single=5_000, enqueue_bulk=20_000, latency_seconds=20, storm=10_000,
             deferred=100_000, short_delay=60, deferred_run=10_000, pool_captures=4_000,
             pacing=1_200)
QUICK = Sizes(captures=2_400, enqueue_single=2_000, enqueue_bulk=10_000, latency_seconds=6, storm=1_200,
              deferred=2_000, short_delay=10, deferred_run=2_000, pool_captures=1_000,
              pacing=300, rounds=3)


def payq_default_shape(processes: int | None = None) -> Shape:
    """payq's worker defaults (``PAYQ_WORKER_POOL``, ``_CONCURRENCY``, ``_PROCESSES``); ``processes`` overrides the last."""
    fields = Settings.model_fields
    return Shape(fields["worker_pool"].get_default(), fields["worker_concurrency"].get_default(),
                 processes or fields["worker_processes"].get_default())


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it completed (targets missed or not), 1 if it could not run."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts: a few minutes")
    parser.add_argument("--processes", type=int, help="payq (and bare Celery) worker processes (default PAYQ_WORKER_PROCESSES's default)")
    parser.add_argument("--storm", type=int, help="captures in the 429 storm (default 10000; --quick 1200)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--pools", action="store_true", help="also drain with each pool/concurrency/process shape at 0 and 50 ms")
    parser.add_argument("--shapes", default="", help="shapes for --pools, e.g. threads:2x32,gevent:1x100 (default: a built-in list)")
    parser.add_argument("--profile", action="store_true", help="also profile a payq worker with py-spy during a drain")
    parser.add_argument("--tweaks", default="", help="payq worker tweaks to apply everywhere (see benchmarks/tweaks.py)")
    parser.add_argument("--compare-tweaks", default="", help="extra payq drains at 0 ms, one per ';'-separated tweak set")
    parser.add_argument("--captures", type=int, help="captures per drain run (default 20000; --quick 2400)")
    parser.add_argument("--rounds", type=int, help="rounds of the drains and notify's on/off, alternating (default 1; --quick 3)")
    parser.add_argument("--deferred", type=int, help="jobs deferred in scenario 5 (default 100000; --quick 2000)")
    parser.add_argument("--deferred-run", type=int, help="of those, how many are then run (default 10000; --quick all)")
    parser.add_argument("--pacing", type=int, help="captures in the pacing scenario (default 1200; --quick 300)")
    parser.add_argument("--payq-tree", type=Path, help="another checkout of payq: the held scenario runs its workers too, first (before and after)")
    parser.add_argument("--out", type=Path, help="where to write the JSON (default benchmarks/results/latest.json)")
    parser.add_argument("--render", type=Path, help="measure nothing: write a saved run's table again (after the report changed)")
    args = parser.parse_args(argv)
    if args.render:
        return _render(args.render)
    sizes = QUICK if args.quick else FULL
    if args.captures:
        sizes = _replace(sizes, captures=args.captures)
    if args.deferred:
        sizes = _replace(sizes, deferred=args.deferred)
    if args.rounds:
        sizes = _replace(sizes, rounds=args.rounds)
    if args.storm:
        sizes = _replace(sizes, storm=args.storm)
    if args.deferred_run:
        sizes = _replace(sizes, deferred_run=args.deferred_run)
    if args.pacing:
        sizes = _replace(sizes, pacing=args.pacing)
    only = [s for s in args.only.split(",") if s]
    tweaks = tuple(t for t in args.tweaks.split(",") if t)

    atexit.register(stop_all)
    # Ctrl-C, SIGTERM and a closed terminal all end the run the same way: every process it started is stopped.
    # SIGINT explicitly too: a shell starts background jobs with it ignored, and Python would keep it so.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    started = time.monotonic()
    try:
        stack = Stack()
    except Exception as exc:
        print(f"cannot start the benchmark's services: {exc}", file=sys.stderr)
        return 1
    results: dict[str, Any] = {"mode": "quick" if args.quick else "full", "sizes": sizes.__dict__, "tweaks_applied": list(tweaks),
                               "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        results["machine"] = report.machine_facts(stack.client.info("server"))
        shape = payq_default_shape(args.processes)
        results["payq_shape"] = shape.label
        say(f"payq benchmark ({results['mode']}): payq workers {shape.label}; {results['machine']['cpu_count']} CPUs")
        if "drain" in only:
            results["drain"] = _drains(stack, shape, sizes.captures, tweaks, sizes.rounds)
        if "enqueue" in only:
            meter = LoadMeter().start()
            results["enqueue"] = run_enqueue(stack, sizes.enqueue_single, sizes.enqueue_bulk, say=say)
            results["enqueue"]["other_load_cores"] = meter.cores()
        if "latency" in only:
            meter = LoadMeter().start()
            results["latency"] = run_latency(stack, shape, 200, sizes.latency_seconds, tweaks=tweaks, say=say)
            results["latency"]["other_load_cores"] = meter.cores()
        if "storm" in only:
            meter = LoadMeter().start()
            results["storm"] = run_storm(stack, shape, sizes.storm, tweaks=tweaks, say=say)
            results["storm"]["other_load_cores"] = meter.cores()
        if "deferred" in only:
            meter = LoadMeter().start()
            results["deferred"] = run_deferred(stack, shape, sizes.deferred, sizes.short_delay, sizes.deferred_run, tweaks=tweaks, say=say)
            results["deferred"]["other_load_cores"] = meter.cores()
        if "console" in only:
            meter = LoadMeter().start()
            results["console"] = run_console(stack, sizes.console_entries, say=say)
            results["console"]["other_load_cores"] = meter.cores()
        if "pacing" in only:
            results["pacing"] = run_pacing(stack, shape, DRAMATIQ_SHAPES[0.0], sizes.pacing, tweaks=tweaks, say=say)
        if "fairness" in only:  # the pacing scenario's payq-configured run with a small store beside the flood, fair share off and on
            results["fairness"] = run_fair_share(stack, shape, sizes.pacing, tweaks=tweaks, say=say)
        if "intake" in only:  # the HTTP intake beside the producer (scenario 2's figures, measured then if it did not run)
            meter = LoadMeter().start()
            results["intake"] = intake.run_intake(stack, intake.QUICK if args.quick else intake.FULL, enqueue=results.get("enqueue"), say=say)
            results["intake"]["other_load_cores"] = meter.cores()
        if "notify" in only:  # scenario 1's payq drain at 0 ms, notifications off and on; four drains, so 10,000 captures at most
            meter = LoadMeter().start()
            results["notify"] = notify.run_notify(stack, shape, min(sizes.captures, 10_000), tweaks=tweaks, say=say, rounds=sizes.rounds)
            results["notify"]["other_load_cores"] = meter.cores()
        if "failover" in only:  # its own Redis: a primary, a replica and three Sentinels
            meter = LoadMeter().start()
            results["failover"] = failover.run_failover(shape, say=say)
            results["failover"]["other_load_cores"] = meter.cores()
        if "held" in only:  # its own workers: a victim, a survivor and a taker
            runs = []
            if args.payq_tree:
                os.environ[PAYQ_TREE] = str(args.payq_tree.resolve())
                try:
                    runs.append(held.run_held(stack, say=say))
                finally:
                    del os.environ[PAYQ_TREE]
            runs.append(held.run_held(stack, say=say))
            results["held"] = {"runs": runs}
        if "redis" in only:  # scenario 1's drains at 0 ms again, with every Redis command in the slowlog
            meter = LoadMeter().start()
            results["redis"] = redis_cost.run_redis_cost(stack, shape, sizes.captures, tweaks=tweaks, say=say)
            results["redis"]["other_load_cores"] = meter.cores()
        if "instructions" in only:  # its own Redis, under callgrind: instructions per job, which the machine's load does not move
            missing = redis_instructions.available()
            if missing:
                say(f"  scenario 13 skipped: {missing}")
            else:
                results["instructions"] = redis_instructions.run_redis_instructions(
                    shape, redis_instructions.QUICK_CAPTURES if args.quick else redis_instructions.FULL_CAPTURES, say=say)
        if args.compare_tweaks:
            results["tweaks"] = _compare_tweaks(stack, shape, sizes.pool_captures, args.compare_tweaks)
        if args.pools:
            shapes = [parse_shape(s) for s in args.shapes.split(",") if s] or None
            results["pools"] = run_pools(stack, sizes.pool_captures, LATENCIES, shapes, tweaks=tweaks, say=say)
        if args.profile:
            with notify.receiving() as (_, notify_env):  # notifications on, so that their cost is in the table
                results["profile"] = run_profile(stack, shape, max(sizes.pool_captures, 3000), tweaks=tweaks, env=notify_env, say=say)
    except KeyboardInterrupt:
        say("interrupted: stopping every process started")
        return 130
    finally:
        stack.close()
        stop_all()
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    title = _title(results)
    rows = _rows(results)
    text = report.render_text(title, rows)
    path = report.write(results, text, report.render_markdown(title, rows), args.out)
    print()
    print(text)
    print(f"\nwritten: {path} (and {path.with_suffix('.md').name}); {results['elapsed_s']:.0f} s")
    return 0


def _render(path: Path) -> int:
    """Write the table of the run saved at ``path`` (its JSON) again, beside it, from its own figures."""
    results = json.loads(path.read_text())
    results.pop("table", None)
    title, rows = _title(results), _rows(results)
    text = report.render_text(title, rows)
    report.write(results, text, report.render_markdown(title, rows), path)
    print(text)
    return 0


def say(line: str) -> None:
    """Progress, as it happens."""
    print(line, flush=True)


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _replace(sizes: Sizes, **changes: Any) -> Sizes:
    return Sizes(**{**sizes.__dict__, **changes})


def _drains(stack: Stack, shape: Shape, captures: int, tweaks: tuple[str, ...], rounds: int = 1) -> list[dict[str, Any]]:
    """Each system's drain at each latency, ``rounds`` times in turn (payq, bare Celery, Dramatiq, then again)."""
    out: list[dict[str, Any]] = []
    for latency in LATENCIES:
        for round_ in range(rounds):
            for result in (quietly(partial(run_drain, stack, "payq", shape, captures, latency, tweaks=tweaks, say=say), say),
                           quietly(partial(run_drain, stack, "bare-celery", shape, captures, latency, say=say), say),
                           quietly(partial(run_drain, stack, "dramatiq", DRAMATIQ_SHAPES[latency], captures, latency, say=say), say)):
                out.append({**result.as_dict(), "round": round_})
    return out


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The run whose rate is the median of ``runs`` (the lower middle one of an even count): the one the table shows."""
    if not runs:
        return None
    return sorted(runs, key=lambda d: d["rate"])[(len(runs) - 1) // 2]


def _round_ratios(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str = "rate") -> list[float]:
    """``a``'s figure over ``b``'s, round by round (a run of the previous main's results has one round)."""
    by_round = {d.get("round", 0): d for d in b}
    return [d[key] / by_round[d.get("round", 0)][key] for d in a if by_round.get(d.get("round", 0), {}).get(key)]


def _compare_tweaks(stack: Stack, shape: Shape, captures: int, spec: str) -> list[dict[str, Any]]:
    out = [run_drain(stack, "payq", shape, captures, 0.0, say=say).as_dict()]
    for group in spec.split(";"):
        tweaks = tuple(t for t in group.split(",") if t)
        out.append(run_drain(stack, "payq", shape, captures, 0.0, tweaks=tweaks, say=say).as_dict())
    return out


def _title(results: dict[str, Any]) -> str:
    m = results["machine"]
    return (f"payq benchmark, {results['mode']} run: {m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}, "
            f"Celery {m['celery']}, kombu {m['kombu']}, redis-py {m['redis_py']}, Redis {m['redis_server']}, "
            f"Dramatiq {m['dramatiq']}; payq workers {results['payq_shape']}"
            + (f" with tweaks {'+'.join(results['tweaks_applied'])}" if results.get("tweaks_applied") else ""))


def _rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    if "drain" in results:
        rows += _drain_rows(results["drain"])
    if "enqueue" in results:
        e = results["enqueue"]
        section = "2. Enqueue, one producer process"
        rows += [
            Row(section, f"single Producer.enqueue calls ({e['single']['jobs']:,})", fmt(e["single"]["rate"], "jobs/s"), "≥ 2,000 jobs/s",
                e["single"]["rate"] >= 2000),
            Row(section, f"bulk Producer.publish of prepared jobs ({e['bulk_publish']['jobs']:,})", fmt(e["bulk_publish"]["rate"], "jobs/s"),
                "≥ 10,000 jobs/s", e["bulk_publish"]["rate"] >= 10_000),
            Row(section, "bulk, validation included (prepare + publish)", fmt(e["bulk_prepare_and_publish"]["rate"], "jobs/s")),
            Row(section, f"payq enqueue --file ({e['cli_file']['jobs']:,} lines, wall time)", fmt(e["cli_file"]["rate"], "jobs/s")),
            Row(section, "  of which interpreter start-up", fmt(e["cli_file"]["startup_s"], "s", 2)),
        ]
        rows.append(_load_row(section, e))
    if "latency" in results:
        lat = results["latency"]
        section = f"3. Latency, enqueue → API call, steady {lat['rate_jobs_per_s']:g} jobs/s ({lat['rate_jobs_per_s'] / 2:g} captures/s + their reports)"
        rows += [
            Row(section, "p50 (captures and reports)", fmt(lat["all"]["p50_ms"], "ms", 1), "< 10 ms", lat["all"]["p50_ms"] < 10),
            Row(section, "p99 (captures and reports)", fmt(lat["all"]["p99_ms"], "ms", 1), "< 100 ms", lat["all"]["p99_ms"] < 100),
            Row(section, "captures p50 / p99", f"{fmt(lat['capture']['p50_ms'], '', 1)} / {fmt(lat['capture']['p99_ms'], 'ms', 1)}"),
            Row(section, "reports p50 / p99", f"{fmt(lat['report']['p50_ms'], '', 1)} / {fmt(lat['report']['p99_ms'], 'ms', 1)}"),
        ]
        rows.append(_load_row(section, lat))
    if "storm" in results:
        s = results["storm"]
        section = f"4. 429 storm: {s['captures']:,} captures, first call answered 429 Retry-After: {s['retry_after_s']}"
        rows += [
            Row(section, "calls during the pause that began after it was set", fmt(s["began_after_pause"]), "0",
                s["began_after_pause"] == 0),
            Row(section, "calls during the pause already in flight (+ while it was written)",
                f"{s['in_flight_when_paused']} (+{s['began_while_pause_being_written']})"),
            Row(section, "calls before their due time", fmt(s["early_calls"]), "0", s["early_calls"] == 0),
            Row(section, f"lateness after due, p50 ({s['deferred']:,} deferred)", fmt(s["lateness_vs_due"]["p50_ms"], "ms")),
            Row(section, "lateness after due, p99", fmt(s["lateness_vs_due"]["p99_ms"], "ms"), "< 1,000 ms",
                s["lateness_vs_due"]["p99_ms"] < 1000),
            Row(section, "  jobs still queued when the pause ended (captures count with their reports)", fmt(s.get("queued_ahead_at_pause_end"))),
            Row(section, "  pace the 429 taught the capture endpoint (none: no successes before it to measure)",
                "none" if s.get("learned_capture_pace") is None else fmt(s["learned_capture_pace"], "calls/s", 1)),
            Row(section, "  mover lag: longest a due job sat in the deferred set", fmt(s["mover_lag_max_ms"], "ms")),
            Row(section, "  first call after the pause ended", fmt(s["first_call_after_pause_ms"], "ms")),
            Row(section, "duplicate calls", fmt(s["duplicates"]), "0", s["duplicates"] == 0),
        ]
        rows.append(_load_row(section, s))
    if "deferred" in results:
        d = results["deferred"]
        section = (f"5. Deferred: {d['deferred']:,} captures deferred {d['delay_s']} s by a 429; "
                   f"{d['run']['run_deferred']:,} of them then shortened to {d['short_delay_s']:g} s and run")
        rss = d["worker_rss_mib"]
        rows += [
            Row(section, f"worker RSS, {d['worker_processes']} process(es): cold / after 500 jobs / all deferred",
                f"{rss.get('cold', '—')} / {rss['before']} → {rss['all_deferred']} MiB"),
            Row(section, "worker RSS growth while deferring (all processes)", f"{rss['growth'] * 1.048576:.1f} MB", "< 50 MB",
                rss["growth"] * 1.048576 < 50),
            Row(section, "Redis used_memory before → after",
                f"{d['redis_used_mib']['before']} → {d['redis_used_mib']['after']} MiB ({d['redis_used_mib']['bytes_per_deferred_job']} B/job)"),
            Row(section, "deferring rate (workers, paused endpoint)", fmt(d["defer_rate"], "jobs/s")),
            Row(section, "fresh jobs' wait p99 (cancels, 20/s, whole run)", fmt(d["fresh_wait_all"]["p99_ms"], "ms"), "< 1,000 ms",
                d["fresh_wait_all"]["p99_ms"] < 1000),
            Row(section, "  while deferring / while deferred / while they run",
                f"{fmt(d['fresh_wait_while_deferring']['p99_ms'])} / {fmt(d['fresh_wait_while_deferred']['p99_ms'])} / "
                f"{fmt(d['fresh_wait_while_running_due']['p99_ms'], 'ms')}"),
            Row(section, "deferred jobs that ran more than once", fmt(d["ran_more_than_once"]), "0", d["ran_more_than_once"] == 0),
            Row(section, "  missing captures / reports / early / still-deferred that ran",
                f"{d['run']['missing_captures']} / {d['run']['missing_reports']} / {d['run']['early_calls']} / {d['run']['still_deferred_that_ran']}"
                + (f" (missing: {', '.join(f'{n} {why}' for why, n in d['run']['why_missing'].items())})" if d["run"].get("why_missing") else ""),
                "0 / 0 / 0 / 0", not (d["run"]["missing_captures"] or d["run"]["missing_reports"] or d["run"]["early_calls"]
                                      or d["run"]["still_deferred_that_ran"])),
        ]
        rows.append(_load_row(section, d))
    if "console" in results:
        c = results["console"]
        section = f"6. Console: the dead-letter list with {c['entries']:,} entries, first page over HTTP from payq serve"
        for name, label in (("unfiltered", "unfiltered (count + one page from the time index)"),
                            ("by_reason", "filtered by reason (every entry read)"), ("search", "search for one trip (every entry read)")):
            rows.append(Row(section, f"{label} p50 / p99", f"{fmt(c[name]['p50_ms'], '', 1)} / {fmt(c[name]['p99_ms'], 'ms', 1)}",
                            "p99 < 1,000 ms", c[name]["p99_ms"] < 1000))
        rows.append(_load_row(section, c))
    if "pacing" in results:
        rows += _pacing_rows(results["pacing"])
    rows += _fairness_rows(results["fairness"]) if "fairness" in results else []
    rows += intake.rows(results["intake"]) if "intake" in results else []
    rows += notify.rows(results["notify"]) if "notify" in results else []
    rows += failover.rows(results["failover"]) if "failover" in results else []
    rows += held.rows(results["held"]) if "held" in results else []
    rows += redis_cost.rows(results["redis"]) if "redis" in results else []
    rows += redis_instructions.rows(results["instructions"]) if "instructions" in results else []
    if "profile" in results and results["profile"].get("costs"):
        p = results["profile"]
        section = (f"Profile: where a payq worker's CPU goes (py-spy, GIL samples, one of {p['shape']}; "
                   f"{'notifications on' if p.get('notifications') else 'notifications off'}), {p['drain_rate']:,.0f} jobs/s")
        rows += [Row(section, c["cost"], f"{100 * c['share']:.1f}%, {c['ms_per_job']:.3f} ms/job") for c in p["costs"] if c["share"] > 0]
    for extra in ("tweaks", "pools"):
        if extra in results:
            section = "Tweaks (payq, 0 ms)" if extra == "tweaks" else "Pools: payq drain by shape"
            for r in results[extra]:
                label = r["shape"] + (" + " + "+".join(r["extra"].get("tweaks", [])) if r["extra"].get("tweaks") else "")
                rows.append(Row(section, f"{label} @ {r['latency_ms']:g} ms",
                                f"{fmt(r['rate'], 'jobs/s')}, {r['worker_cpu_ms_per_job']:.2f} ms CPU/job, {r['worker_rss_mib']:.0f} MiB, "
                                f"{r['duplicates']} dup, others {r.get('other_load_cores', 0):.2f} cores"))
    return rows


def _load_row(section: str, figures: dict[str, Any]) -> Row:
    return Row(section, "others' CPU load on this shared machine meanwhile", f"{figures.get('other_load_cores', 0):.2f} cores")


def _all_cpu(drain: dict[str, Any]) -> float:
    """All the CPU one job of a drain cost this machine: workers, sandbox, Redis (ms)."""
    return float(drain["worker_cpu_ms_per_job"] + drain["sandbox_cpu_ms_per_job"] + drain["redis_cpu_ms_per_job"])


def _drain_rows(drains: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    runs: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for run in drains:
        runs.setdefault((run["system"], run["latency_ms"]), []).append(run)
    by = {key: _median_run(group) for key, group in runs.items()}
    captures = drains[0]["captures"]
    rounds = max(len(group) for group in runs.values())
    for latency in LATENCIES:
        section = (f"1. Drain at {latency:g} ms: {captures:,} captures + {captures:,} reports"
                   + (f"; {rounds} rounds in turn, each figure the median round's" if rounds > 1 else ""))
        payq, bare, dram = by.get(("payq", latency)), by.get(("bare-celery", latency)), by.get(("dramatiq", latency))
        cores = os.cpu_count() or 1
        for name, d in (("payq", payq), ("bare Celery task", bare), ("bare Dramatiq actor", dram)):
            if d:
                targeted = name == "payq" and latency == 50
                rows.append(Row(section, f"{name} ({d['shape']})",
                                f"{fmt(d['rate'], 'jobs/s')} ({d['worker_cpu_ms_per_job']:.2f} ms CPU/job)",
                                "≥ 1,000 jobs/s" if targeted else "", d["rate"] >= 1000 if targeted else None,
                                f"CPU-bound: at {_all_cpu(d):.2f} ms of CPU a job (workers, sandbox, Redis) {cores} cores drain "
                                f"{fmt(cores * 1000 / _all_cpu(d))} jobs/s at most" if targeted else ""))
        if payq and bare and bare["rate"]:
            ratios = spread(_round_ratios(runs[("payq", latency)], runs[("bare-celery", latency)]))
            ratio, shown = ratios["median"], with_spread(ratios)
            if latency == 0:
                redis_more = payq["redis_cpu_ms_per_job"] - bare["redis_cpu_ms_per_job"]
                redis_ratio = spread(_round_ratios(runs[("payq", latency)], runs[("bare-celery", latency)], "redis_cpu_ms_per_job"))
                rows.append(Row(section, "payq / bare Celery", shown, "≥ 0.9 (issue 23)", ratio >= 0.9))
                rows.append(Row(section, "Redis CPU per job, payq / bare Celery", with_spread(redis_ratio), "≤ 1.3 (issue 31)",
                                redis_ratio["median"] <= 1.3,
                                f"payq's scripts cost Redis {payq['redis_cpu_ms_per_job']:.3f} ms a job against bare Celery's "
                                f"{bare['redis_cpu_ms_per_job']:.3f} (scenario 12 splits it by script)"))
                rows.append(Row(section, "payq / bare Celery, the first aim", shown, "≥ 1.0", ratio >= 1.0,
                                f"payq's workers cost {payq['worker_cpu_ms_per_job']:.2f} ms a job against bare Celery's "
                                f"{bare['worker_cpu_ms_per_job']:.2f}; its two scripts a job (BEGIN, the outcome) cost Redis "
                                f"{redis_more:.2f} ms more, on the same two cores"))
            else:
                rows.append(Row(section, "payq / bare Celery", shown))
        if payq and dram and dram["rate"]:
            ratio = payq["rate"] / dram["rate"]
            rows.append(Row(section, "payq / Dramatiq", f"{ratio:.2f}", "aim ≥ 1.0" if latency == 0 else "", ratio >= 1.0 if latency == 0 else None,
                            f"Dramatiq's workers cost {dram['worker_cpu_ms_per_job']:.2f} ms a job: no Celery hub or request machinery, "
                            "which is most of a payq worker's CPU (the profile below)" if latency == 0 and payq and dram else ""))
        present = [d for d in (payq, bare, dram) if d]
        if present:
            # all CPU a job costs on this machine (workers, sandbox, Redis): what 2 idle cores could drain at most
            cpus = [_all_cpu(d) for d in present]
            rows.append(Row(section, "CPU per job, workers + sandbox + Redis (" + " / ".join(d["system"] for d in present) + ")",
                            " / ".join(f"{c:.2f}" for c in cpus) + " ms"))
            rows.append(Row(section, f"  → CPU-bound ceiling on {cores} idle cores",
                            " / ".join(fmt(cores * 1000 / c) for c in cpus) + " jobs/s"))
        if payq:
            dup = sum(d["duplicates"] + d["missing"] for d in (payq, bare, dram) if d)
            rows.append(Row(section, "duplicate or missing calls (all three)", fmt(dup), "0", dup == 0))
            kept = [d for system in ("payq", "bare-celery", "dramatiq") for d in runs.get((system, latency), [])]
            others = max(d["other_load_cores"] for d in kept)
            aside = [a for d in kept for a in d["extra"].get("set_aside", [])]
            rows.append(Row(section, "others' CPU load on this shared machine meanwhile (max)", f"{others:.2f} cores"
                            + (f"; {len(aside)} runs set aside and run again (others {max(a['other_load_cores'] for a in aside):.2f}"
                               f" cores at most)" if aside else "")))
    return rows


def _fairness_rows(f: dict[str, Any]) -> list[Row]:
    section = (f"9b. Fair share: {f['captures']:,} captures of one store + their reports, the limit configured ({f['rate_per_s']}/s); "
               f"another store's captures {f['small_per_s']:g}/s beside them")
    rows: list[Row] = []
    for system, label in (("payq-first-come", "turns first come, first served (PAYQ_FAIR_SHARE=false)"),
                          ("payq-fair-share", "turns shared between stores (the default)")):
        r = f["runs"].get(system)
        if r is None:
            continue
        never = f", {r['fresh_never_called']} never called" if r["fresh_never_called"] else ""
        rows.append(Row(section, f"{label}: the small store's wait p50 / p99",
                        f"{fmt(r['fresh_wait']['p50_ms'])} / {fmt(r['fresh_wait']['p99_ms'], 'ms')}{never}",
                        "p99 < 5,000 ms" if system == "payq-fair-share" else "",
                        r["fresh_wait"]["p99_ms"] < 5000 if system == "payq-fair-share" else None))
        pace = f["rate_per_s"] * PACE_CONFIGURED_SHARE
        rows.append(Row(section, f"{label}: time to settle the flood", f"{r['settle_s']:.1f} s = {r['ratio']:.2f}× N/R"))
        if "all_capture_rate" in r:
            rows.append(Row(section, f"{label}: both stores' captures meanwhile, against the pace ({pace:.1f}/s)",
                            f"{r['all_capture_rate']:.1f}/s = {r['all_capture_rate'] / pace:.2f}× the pace",
                            "≥ 0.91× (within 1.1×)" if system == "payq-fair-share" else "",
                            r["all_capture_rate"] / pace >= 1 / 1.1 if system == "payq-fair-share" else None))
    return rows


def _pacing_rows(p: dict[str, Any]) -> list[Row]:
    runs = p["runs"]
    rate, retry_after = p["rate_per_s"], p["retry_after_s"]
    section = (f"9. Pacing: {p['captures']:,} captures + their reports; the API takes {rate} calls/s on capture and on feedback "
               f"(429 Retry-After: {retry_after}); cancels {p['fresh_per_s']:g}/s beside them")
    rows: list[Row] = []

    def settle(r: dict[str, Any], ideal: str) -> str:
        return f"{r['settle_s']:.1f} s = {r['ratio']:.2f}× {ideal}"

    def throttled(r: dict[str, Any]) -> str:
        return f"{r['throttled']:,} / {r['calls']:,} = {100 * r['throttled_share']:.1f}%"

    def fresh(r: dict[str, Any]) -> str:
        never = f", {r['fresh_never_called']} never called" if r["fresh_never_called"] else ""
        return f"{fmt(r['fresh_wait']['p50_ms'])} / {fmt(r['fresh_wait']['p99_ms'], 'ms')}{never}"

    def per_s(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f}/s"

    def bursts(r: dict[str, Any]) -> str:
        return f"{r['bursts_429']['capture']} / {r['bursts_429']['feedback']}"

    learned = runs.get("payq-learned")
    if learned:
        ideal = f"(N/R + T = {p['ideal_learned_s']:g} s)"
        taught = ", ".join(f"{op} {v['accepted']:g}/s → paced {v['accepted'] * PACE_BETA:.1f}/s"
                           for op, v in learned.get("pace", {}).items()) or "nothing"
        rows += [
            Row(section, f"payq, limit learned ({learned['shape']}): time to settle ÷ ideal", settle(learned, ideal), "≤ 1.25×",
                learned["complete"] and learned["ratio"] <= 1.25),
            Row(section, "  429s / capture and report calls", throttled(learned), "< 5%", learned["throttled_share"] < 0.05),
            Row(section, "  429 bursts (lessons), capture / feedback; what they taught: accepted → paced", f"{bursts(learned)}; {taught}"),
            Row(section, "  captures accepted per second, steady (10th–90th percentile)", per_s(learned["steady_capture_rate"])),
            Row(section, "  fresh cancels' wait p50 / p99 while the backlog drains", fresh(learned), "p99 < 2,000 ms",
                learned["fresh_wait"]["p99_ms"] < 2000 and not learned["fresh_never_called"]),
        ]
    configured = runs.get("payq-configured")
    if configured:
        rows += [
            Row(section, f"payq, PAYQ_RATE_LIMITS = {rate}, paced at {rate * PACE_CONFIGURED_SHARE:g}/s ({configured['shape']}): "
                         "time to settle ÷ N/R",
                settle(configured, f"({p['ideal_s']:g} s)"), "≤ 1.1×", configured["complete"] and configured["ratio"] <= 1.1),
            Row(section, "  429s / capture and report calls", throttled(configured), "0", configured["throttled"] == 0),
            Row(section, "  captures accepted per second, steady (10th–90th percentile)", per_s(configured["steady_capture_rate"])),
            Row(section, "  fresh cancels' wait p50 / p99 while the backlog drains", fresh(configured), "p99 < 2,000 ms",
                configured["fresh_wait"]["p99_ms"] < 2000 and not configured["fresh_never_called"]),
        ]
    peers = (("bare-celery", "bare Celery, rate_limit {rate_limit_per_process} per process ({shape}); 429: retry(countdown=T)"),
             ("dramatiq", "Dramatiq, WindowRateLimiter {rate}/1 s in Redis ({shape}); backoff 1–5 s; 429: Retry(delay=T)"))
    for system, label in peers:
        r = runs.get(system)
        if not r:
            continue
        rows += [
            Row(section, label.format(rate=rate, **r) + ": time to settle ÷ N/R", settle(r, f"({p['ideal_s']:g} s)")),
            Row(section, "  429s / capture and report calls; 429 bursts capture / feedback", f"{throttled(r)}; {bursts(r)}"),
            Row(section, "  captures accepted per second, steady (10th–90th percentile)", per_s(r["steady_capture_rate"])),
            Row(section, "  fresh cancels' wait p50 / p99 while the backlog drains", fresh(r)),
        ]
    present = [runs[s] for s in PACING_SYSTEMS if s in runs]
    names = " / ".join(r["system"] for r in present)
    payq_runs = [r for r in present if r["system"].startswith("payq")]
    rows += [
        Row(section, f"duplicate calls ({names})", " / ".join(str(r["duplicates"]) for r in present), "0 (payq)",
            all(r["duplicates"] == 0 for r in payq_runs) if payq_runs else None),
        Row(section, "trips without an accepted capture or report at the end",
            " / ".join(str(r["lost"]["captures"] + r["lost"]["reports"]) for r in present), "0 (payq)",
            all(r["lost"]["captures"] + r["lost"]["reports"] == 0 for r in payq_runs) if payq_runs else None),
        Row(section, "most calls let through in any second, capture (the API's limit holds)",
            " / ".join(str(r["max_accepted_in_1s"]["capture"]) for r in present)),
        Row(section, "worker CPU, whole run", " / ".join(f"{r['worker_cpu_s']:.1f}" for r in present) + " s"),
        Row(section, "others' CPU load on this shared machine meanwhile (max)", f"{max(r['other_load_cores'] for r in present):.2f} cores"),
    ]
    return rows

