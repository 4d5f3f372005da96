"""`make bench`: run every benchmark, print its figures, write bench/results/latest.json."""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    assignment_speed,
    cold_start,
    group_changes,
    hr_ingress,
    loop_blocking,
    membership_sync,
    onboarding_burst,
    permfa_migration,
    planning_scale,
    queue_host,
    resync_delta,
    risk_alerting,
)
from local.azurite import start_azurite

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    azurite = start_azurite()
    figures: dict[str, dict[str, float]] = {}
    try:
        print("queue host: pickup latency after idling (against maxPollingInterval) ...", flush=True)
        figures["queue_pickup"] = queue_host.pickup_latency(azurite)
        print(f"  {figures['queue_pickup']}", flush=True)
        print("queue host: throughput with host.json batching (against batchSize 1) ...", flush=True)
        figures["queue_throughput"] = queue_host.throughput(azurite)
        print(f"  {figures['queue_throughput']}", flush=True)
        print(
            f"HR ingress: signed hires from {hr_ingress.CLIENTS} clients, against a no-op HTTP function "
            "on the same mini-host ...",
            flush=True,
        )
        figures["hr_ingress"] = _own_azurite(hr_ingress.run)
        print(f"  {figures['hr_ingress']}", flush=True)
        print(
            "cold start: the first hr_worker invocation of a fresh process against the next ones "
            "(first hire waiting at start, or 5 s later; warm start on and off) ...",
            flush=True,
        )
        figures["cold_start"] = _own_azurite(cold_start.run)
        print(f"  {figures['cold_start']}", flush=True)
        print(
            f"onboarding burst: {onboarding_burst.HIRES} signed hires at once, accept -> the manager's "
            f"TAP e-mail, on one instance and on {onboarding_burst.INSTANCES} ...",
            flush=True,
        )
        figures["onboarding_burst"] = _own_azurite(onboarding_burst.run)
        print(f"  {figures['onboarding_burst']}", flush=True)
        print(
            f"group changes: {group_changes.CHANGES} break-glass additions to wave groups through Graph, "
            "change -> notification -> queue -> revert ...",
            flush=True,
        )
        figures["group_changes"] = group_changes.run(azurite)
        print(f"  {figures['group_changes']}", flush=True)
        r = risk_alerting
        print(
            f"risk to on-call: {r.DETECTIONS} detections over {r.SPREAD_S:.0f} s, detection visible -> "
            f"receiver 2xx (goal: poll interval {r.POLL_S} s + 2 s) ...",
            flush=True,
        )
        figures["risk_latency"] = risk_alerting.latency(azurite)
        print(f"  {figures['risk_latency']}", flush=True)
        print(
            f"risk to on-call: a storm of {r.STORM} detections in one minute, grouped per user ...",
            flush=True,
        )
        figures["risk_storm"] = _own_azurite(risk_alerting.storm)
        print(f"  {figures['risk_storm']}", flush=True)
    finally:
        azurite.stop()
    print(
        f"event loop: a timer tick and {loop_blocking.HIRES} hr-events invocations on one loop, heartbeat "
        f"every {loop_blocking.HEARTBEAT_SECONDS * 1000:.0f} ms ...",
        flush=True,
    )
    figures["loop_blocking"] = loop_blocking.run()
    print(f"  {figures['loop_blocking']}", flush=True)
    m = membership_sync
    print(
        f"membership sync: {m.MEMBERS} users, write budget time scale {m.TIME_SCALE:g}, "
        f"naive baseline on {m.NAIVE_SAMPLE} users (extrapolated) ...",
        flush=True,
    )
    figures["membership_sync"] = membership_sync.run()
    print(f"  {figures['membership_sync']}", flush=True)
    print(
        "wave planning at scale: 1k, 10k and 100k users, the emulator in a process of its own ...",
        flush=True,
    )
    figures["planning_scale"] = planning_scale.run()
    print(f"  {figures['planning_scale']}", flush=True)
    print(
        f"wave re-sync at {resync_delta.USERS:,} users: a full read, a quiet tick, a tick after "
        f"{resync_delta.CHANGED:,} users changed (the emulator in a process of its own) ...",
        flush=True,
    )
    figures["resync_delta"] = resync_delta.run()
    print(f"  {figures['resync_delta']}", flush=True)
    print(
        f"per-user MFA migration: {permfa_migration.USERS:,} users in an enforced wave, read and moved off "
        f"(the emulator in a process of its own, write budget {permfa_migration.CAPACITY} per "
        f"{permfa_migration.PER_SECONDS:g} s) ...",
        flush=True,
    )
    figures["permfa_migration"] = permfa_migration.run()
    print(f"  {figures['permfa_migration']}", flush=True)
    print(
        f"wave assignment: {assignment_speed.USERS} users, compiled selectors against a literal matcher ..."
    )
    figures["assignment_speed"] = assignment_speed.run()
    print(f"  {figures['assignment_speed']}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "figures": figures,
    }
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=2) + "\n")
    pickup = figures["queue_pickup"]["pickup_worst_over_limit"]
    speedup = figures["queue_throughput"]["throughput_over_baseline"]
    print(f"\npickup worst / maxPollingInterval = {pickup:.2f} (limit 1.00)")
    print(f"throughput / batchSize-1 baseline = {speedup:.2f}x")
    loop = figures["loop_blocking"]
    print(
        f"loop blocked at most {loop['max_gap_ms']:.1f} ms wall ({loop['max_gap_over_limit']:.2f} of the "
        f"{loop_blocking.LIMIT_MS:.0f} ms limit; p99 {loop['p99_gap_ms']:.1f} ms), "
        f"{loop['max_cpu_gap_ms']:.1f} ms of loop CPU ({loop['max_cpu_gap_over_limit']:.2f} of the limit); "
        f"storage calls on the loop thread: {loop['loop_thread_calls']:.0f}"
    )
    groups = figures["group_changes"]
    print(
        f"group change -> revert p50 {groups['p50_s']:.2f} s, p99 {groups['p99_s']:.2f} s "
        f"({groups['p99_over_limit']:.2f} of the {group_changes.LIMIT_S:.0f} s goal), "
        f"{groups['graph_calls_per_change']:.2f} Graph calls and "
        f"{groups['reverts_per_change']:.2f} reverts per change"
    )
    ingress = figures["hr_ingress"]
    print(
        f"HR ingress {ingress['hr_req_per_s']:.0f} req/s = {ingress['hr_over_noop_throughput']:.2f} x the "
        f"no-op's {ingress['noop_req_per_s']:.0f} (goal >= {hr_ingress.THROUGHPUT_GOAL}); p99 "
        f"{ingress['hr_p99_ms']:.1f} ms = {ingress['hr_over_noop_p99']:.2f} x the no-op's "
        f"(goal <= {hr_ingress.P99_GOAL:g}); errors {ingress['errors']:.0f}; health p50 "
        f"{ingress['health_p50_ms']:.1f} ms = {ingress['health_over_hr']:.2f} x one hire's "
        f"{ingress['hr_single_p50_ms']:.1f} ms (goal <= {hr_ingress.HEALTH_GOAL:g})"
    )
    burst = figures["onboarding_burst"]
    print(
        f"onboarding burst of {burst['hires']:.0f} on {burst['instances']:.0f} instances: accept -> TAP "
        f"e-mail p50 {burst['p50_s']:.1f} s, p99 {burst['p99_s']:.1f} s ({burst['p99_over_goal']:.2f} of the "
        f"{onboarding_burst.GOAL_P99_S:g} s goal; one instance p99 {burst['one_instance_p99_s']:.1f} s = "
        f"{burst['one_instance_p99_over_goal']:.2f}), accept -> done (in the wave group) p99 "
        f"{burst['done_p99_s']:.1f} s (one instance {burst['one_instance_done_p99_s']:.1f} s); "
        f"{burst['hires_per_s']:.1f} hires/s = "
        f"{burst['hires_per_s_over_budget_ceiling']:.2f} x the identity write budget's sustained ceiling "
        f"(one instance {burst['one_instance_hires_per_s']:.1f}); {burst['throttled_429']:.0f} 429s; "
        f"{burst['table_round_trips_per_hire']:.1f} Azure Tables round trips per hire "
        f"({burst['round_trips_over_goal']:.2f} of the goal of {onboarding_burst.GOAL_ROUND_TRIPS:g}), "
        f"{burst['graph_round_trips_per_hire']:.1f} Graph round trips per hire"
    )
    cold = figures["cold_start"]
    print(
        f"cold start: app load {cold['later_warm_start_app_load_s']:.2f} s; first hr_worker invocation "
        f"{cold['later_warm_start_first_over_warm']:.2f} x warm with the warm start (goal <= "
        f"{cold_start.GOAL:g}; {cold['later_no_warm_start_first_over_warm']:.1f} x without); a hire "
        f"already waiting at start: {cold['waiting_warm_start_first_over_warm']:.1f} x "
        f"({cold['waiting_no_warm_start_first_over_warm']:.1f} x without)"
    )
    risk, storm = figures["risk_latency"], figures["risk_storm"]
    print(
        f"risk detection -> receiver p50 {risk['p50_s']:.2f} s, p99 {risk['p99_s']:.2f} s "
        f"({risk['p99_over_goal']:.2f} of the {risk['goal_s']:.0f} s goal), lost {risk['lost']:.0f}; "
        f"storm of {storm['detections']:.0f}: {storm['groups_told_share']:.2f} of the groups told, "
        f"{storm['digests']:.0f} digests, {storm['violations']:.0f} rate-limit violations"
    )
    sync = figures["membership_sync"]
    _print_sync(sync)
    scale = figures["planning_scale"]
    print(
        f"wave planning: {scale['plan_s_1k']:.2f} s / {scale['plan_s_10k']:.2f} s / "
        f"{scale['plan_s_100k']:.2f} s at 1k / 10k / 100k users; "
        f"{scale['cpu_us_per_added_user']:.1f} us of client CPU per added user "
        f"({scale['cpu_us_per_user_100k']:.1f} per user at 100k; goal <= {planning_scale.CPU_GOAL_US:g}), "
        f"100k over 10k per user {scale['cpu_per_user_growth']:.2f} "
        f"(goal <= {planning_scale.LINEAR_GOAL:g}); peak memory {scale['peak_mb_1k']:.1f} / "
        f"{scale['peak_mb_10k']:.1f} / {scale['peak_mb_100k']:.1f} MB"
    )
    speed = figures["assignment_speed"]
    print(
        f"wave assignment of {speed['users']:.0f} users: {speed['compiled_s']:.3f} s compiled, "
        f"{speed['speedup']:.2f} x the literal matcher (goal >= {assignment_speed.GOAL:g})"
    )
    resync = figures["resync_delta"]
    print(
        f"wave re-sync at {resync_delta.USERS:,} users: full {resync['full_reads']:.0f} round trips, "
        f"quiet tick {resync['quiet_reads']:.0f} (goal <= {resync_delta.QUIET_GOAL}), "
        f"{resync['changed_users']:.0f} users changed {resync['changed_reads']:.0f} "
        f"({resync['changed_reads_per_changed_user']:.3f} per changed user, "
        f"{resync['changed_reads_over_full']:.2f} of a full read)"
    )
    pm = figures["permfa_migration"]
    print(
        f"per-user MFA migration of {pm['users']:,.0f} users: {pm['read_requests_per_user']:.4f} read "
        f"requests per user (goal <= {permfa_migration.GOAL_READS_PER_USER:g}), "
        f"{pm['writes_per_migrated']:.3f} writes "
        f"per migrated user (goal <= {permfa_migration.GOAL_WRITES_PER_MIGRATED:g}; "
        f"{pm['write_attempts_per_migrated']:.3f} with 429s), writes {pm['write_wall_over_floor']:.3f} x the "
        f"budget floor (goal <= {permfa_migration.GOAL_WALL_OVER_FLOOR:g}); {pm['migrated']:.0f} moved, "
        f"{pm['left_on_per_user_mfa']:.0f} left, {pm['failed']:.0f} failed"
    )
    print(f"written to {RESULTS / 'latest.json'}")
    loop_ok = loop["loop_thread_calls"] == 0 and loop["max_cpu_gap_over_limit"] <= 1.0
    groups_ok = group_changes.meets_targets(groups)
    risk_ok = risk_alerting.meets_targets(risk, storm)
    ok = (
        pickup <= 1.0
        and loop_ok
        and groups_ok
        and risk_ok
        and hr_ingress.meets_targets(ingress)
        and cold_start.meets_targets(cold)
        and onboarding_burst.meets_targets(burst)
        and membership_sync.meets_targets(sync)
        and permfa_migration.meets_targets(figures["permfa_migration"])
        and planning_scale.meets_targets(scale)
        and assignment_speed.meets_targets(figures["assignment_speed"])
        and resync_delta.meets_targets(resync)
    )
    return 0 if ok else 1


def _own_azurite(scenario: Callable[[Any], dict[str, float]]) -> dict[str, float]:
    """Run ``scenario`` on an Azurite of its own: nothing an earlier scenario left (queued messages,
    wave groups recorded for another emulator's tenant) is in its way."""
    storage = start_azurite()
    try:
        return scenario(storage)
    finally:
        storage.stop()


def _print_sync(sync: dict[str, float]) -> None:
    print(
        f"sync writes per member = {sync['writes_per_member']:.4f} charged, "
        f"{sync['write_attempts_per_member']:.4f} with 429s (target <= 0.055; naive "
        f"{sync['naive_writes_per_member']:.2f})"
    )
    print(f"sync round trips {sync['round_trips']:.0f}, 429s received {sync['throttled']:.0f}")
    print(
        f"sync wall / floor = {sync['wall_over_floor']:.3f} (target <= 1.25; strict floor "
        f"{sync['wall_over_strict_floor']:.3f})"
    )
    print(
        f"naive / WaveGuard: writes {sync['naive_over_waveguard_writes']:.1f}x, "
        f"wall {sync['naive_over_waveguard_wall']:.1f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
