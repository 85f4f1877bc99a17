"""The summary printed at the end of a benchmark run, with the targets beside the figures."""

from __future__ import annotations

from typing import Any

# The targets: figures to reach, not timed tests.
TARGET_VS_RCLONE = 1.0
TARGET_VS_PUT = 1.15
TARGET_RSS_MIB = 150
TARGET_BIG_RSS_MIB = 250


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _legs_table(legs: dict[str, dict[str, Any]]) -> list[str]:
    """One row per leg: time, CPU, requests per recording, memory, the noise."""
    lines = [
        "| leg | wall s (min-max) | quiet runs: wall s | rec/s | MiB/s | CPU s (main thread) | "
        "CPU ms per recording | storage requests per recording | provider requests per "
        "recording | peak RSS MiB | sim CPU s | weed CPU s | others' CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for leg, v in legs.items():
        quiet = f"{v['wall_quiet_s']:.2f} ({v['quiet_runs']})" if v.get("quiet_runs") else "none"
        storage = v.get("storage_requests_per_recording")
        lines.append(
            f"| {leg} | {v['wall_s']:.2f} ({v['wall_min_s']:.2f}-{v['wall_max_s']:.2f}) | "
            f"{quiet} | "
            f"{v['recordings_per_s']:.0f} | {v['mib_per_s']:.1f} | {v['cpu_s']:.1f} "
            f"({v.get('main_thread_cpu_s', 0):.1f}) | "
            f"{v.get('cpu_ms_per_recording', 0):.2f} | "
            f"{'(not counted)' if storage is None else f'{storage:.3f}'} | "
            f"{v.get('provider_requests_per_recording', 0):.3f} | "
            f"{v['peak_rss_mib']:.0f} | {v['sim_cpu_s']:.1f} | {v['weed_cpu_s']:.1f} | "
            f"{v.get('others_cpu_s', 0):.1f} |"
        )
    return lines


def render(results: dict[str, Any]) -> str:
    lines: list[str] = []
    m = results["machine"]
    lines.append(
        f"machine: {m['cpus']} CPUs, {m['memory_gib']} GiB, Python {m['python']}, "
        f"load average at start {m['load_avg_at_start']}"
    )
    lines.append(f"archiver measured: {results.get('code', '?')}")
    t = results.get("throughput")
    if t:
        lines.append("")
        lines.append(
            f"throughput: {t['calls']} x {t['size'] // 1024} KiB, concurrency {t['concurrency']}"
            f", medians of {t['reps']}"
        )
        lines += _legs_table(t["legs"])
        r = t["ratios"]
        if "archiver_vs_rclone" in r:
            x = r["archiver_vs_rclone"]
            lines.append(
                f"archiver / rclone wall: {x:.2f} (target <= {TARGET_VS_RCLONE}: "
                f"{_verdict(x <= TARGET_VS_RCLONE)})"
            )
        if "archiver_vs_rclone_cpu_per_recording" in r:
            x = r["archiver_vs_rclone_cpu_per_recording"]
            lines.append(
                f"archiver / rclone CPU per recording: {x:.2f} (target <= 2: {_verdict(x <= 2)})"
            )
        if "archiver_vs_put" in r:
            x = r["archiver_vs_put"]
            lines.append(
                f"archiver / bare PUT wall: {x:.2f} (target <= {TARGET_VS_PUT}: "
                f"{_verdict(x <= TARGET_VS_PUT)})"
            )
        for other in ("rclone", "put"):
            if f"archiver_vs_{other}_total_cpu" in r:
                lines.append(
                    f"  by CPU of the whole run (command + simulator + SeaweedFS): archiver / "
                    f"{other} {r[f'archiver_vs_{other}_total_cpu']:.2f}"
                )
            if f"archiver_vs_{other}_quiet" in r:
                lines.append(
                    f"  on quiet runs only: archiver / {other} "
                    f"{r[f'archiver_vs_{other}_quiet']:.2f}"
                )
        for name, x in r.items():
            if name.startswith("archiver:"):
                ours, other = name.split("_vs_", 1)
                by = "whole run's CPU" if other.endswith("_total_cpu") else "wall"
                lines.append(f"{ours} / {other.removesuffix('_total_cpu')} ({by}): {x:.2f}")
        if "archiver_vs_put_shaped" in r:
            lines.append(
                f"archiver / its own PUT path without the download (put-shaped): "
                f"{r['archiver_vs_put_shaped']:.2f}"
            )
        a = t["legs"].get("archiver")
        if a:
            rss = a["peak_rss_max_mib"]
            lines.append(
                f"archiver peak RSS (worst rep): {rss:.0f} MiB (target <= {TARGET_RSS_MIB}: "
                f"{_verdict(rss <= TARGET_RSS_MIB)})"
            )
    lat = results.get("latency")
    if lat:
        lines.append("")
        lines.append(
            f"latency: the same through a proxy adding {lat['latency_ms']} ms to every storage "
            f"request (its requests counted), medians of {lat['reps']}"
        )
        lines += _legs_table(lat["legs"])
        r = lat["ratios"]
        for name in (
            "archiver_vs_rclone",
            "archiver_vs_put",
            "archiver_vs_rclone_cpu_per_recording",
        ):
            if name in r:
                lines.append(f"{name.replace('_', ' ')}: {r[name]:.2f}")
    b = results.get("big")
    if b:
        lines.append("")
        lines.append(
            f"big: one {b['size_mib']} MiB recording in {b['wall_s']:.1f}s "
            f"({b['mib_per_s']:.1f} MiB/s), peak RSS {b['peak_rss_mib']:.0f} MiB (target < "
            f"{TARGET_BIG_RSS_MIB} at 300 MiB: {_verdict(b['peak_rss_mib'] < TARGET_BIG_RSS_MIB)})"
        )
    many = results.get("many")
    if many:
        lines.append("")
        lines.append(
            f"many: {many['calls']} CDRs x {many['size'] // 1024} KiB in {many['wall_s']:.0f}s "
            f"({many['recordings_per_s']:.0f} rec/s), peak RSS {many['peak_rss_mib']:.0f} MiB; "
            f"steady RSS {many.get('steady_early_median_mib', 0):.0f} -> "
            f"{many.get('steady_late_median_mib', 0):.0f} MiB "
            f"(slope {many.get('slope_mib_per_min', 0):+.2f} MiB/min)"
        )
    s = results.get("state")
    if s:
        lines.append("")
        lines.append(f"state: {s['calls']} CDRs, pages of {s['page']}, db {s['db_mib']:.0f} MiB")
        lines.append(
            f"  insert {s['insert_per_s']:.0f}/s (first tenth {s['insert_first_tenth_per_s']:.0f}"
            f"/s, last tenth {s['insert_last_tenth_per_s']:.0f}/s); dedup {s['dedup_per_s']:.0f}/s"
        )
        lines.append(
            f"  lookup by sip_call_id p50 {s['lookup_sip_call_id']['p50_ms']:.2f} ms, p99 "
            f"{s['lookup_sip_call_id']['p99_ms']:.2f} ms; by cdr_id p50 "
            f"{s['lookup_cdr_id']['p50_ms']:.2f} ms; claim of 16 due p50 "
            f"{s['claim_due_16']['p50_ms']:.2f} ms; counts {s['counts']['p50_ms']:.0f} ms"
        )
        lines.append(
            f"  `archiver status` {s['status_wall_s']:.2f}s (CLI start-up alone "
            f"{s['cli_startup_s']:.2f}s)"
        )
    g = results.get("get")
    if g:
        # The targets are at a million calls: a smaller run gives figures, no verdict.
        at_scale = g["manifest_entries"] >= 1_000_000

        def target(ok: bool) -> str:
            return _verdict(ok) if at_scale else "not judged below 1,000,000 entries"

        lines.append("")
        lines.append(
            f"get: {g['manifest_entries']} manifest entries in {g['manifest_objects']} objects "
            "(get's local index of the manifests)"
        )
        lines.append(
            f"  cold (no local index: built from the manifests) `archiver get ID --url` "
            f"{g['get_cold_wall_s']:.1f}s, peak RSS {g['get_cold_peak_rss_mib']:.0f} MiB "
            f"(in-process {g['resolve_cold_s']:.1f}s; target < 60 s: "
            f"{target(g['get_cold_wall_s'] < 60.0)})"
        )
        lines.append(
            f"  warm: lookup (in-process) median {g['resolve_median_s'] * 1000:.0f} ms; "
            f"`archiver get ID --url` {g['get_url_wall_s']:.2f}s, `archiver get ID -o DIR` "
            f"{g['get_file_wall_s']:.2f}s (CLI start-up alone {g['cli_startup_s']:.2f}s; "
            f"target < 2 s: {target(g['get_file_wall_s'] < 2.0)})"
        )
    p = results.get("profile")
    if p:
        lines.append("")
        lines.append(f"profile: {p['samples']} samples; self time by package:")
        for row in p["by_package"][:10]:
            lines.append(f"  {row['share']:6.1%}  {row['name']}")
        lines.append("  functions with the most self time:")
        for row in p["self"][:12]:
            lines.append(f"  {row['share']:6.1%}  {row['name']}")
        lines.append("  archiver functions, inclusive:")
        for row in p["archiver_inclusive"][:12]:
            lines.append(f"  {row['share']:6.1%}  {row['name']}")
    lines.append("")
    lines.append(f"whole run: {results['elapsed_s']:.0f}s")
    return "\n".join(lines)
