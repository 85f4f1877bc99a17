"""Prometheus metrics of the daemon, on a registry of their own."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# The *_created series only add noise to dashboards.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """What the pipeline reports as it goes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.cdrs_seen = Counter(
            "archiver_cdrs_seen", "CDRs listed that were new to the state", registry=r
        )
        self.archived = Counter(
            "archiver_recordings_archived", "Recordings stored and verified", registry=r
        )
        self.failed = Counter(
            "archiver_recordings_failed",
            # The label is an archiver.failures.FailureKind value (low cardinality).
            "Recordings that failed permanently, by kind of failure",
            ["reason"],
            registry=r,
        )
        self.listings_stopped = Counter(
            "archiver_listings_stopped",
            # limit: an archiver.failures.ListingLimit value; producer: a
            # pipeline.repeating.Repeating value (the polls or the sweep).
            "Listings a bound stopped, by bound and by the producer whose listing it was",
            ["limit", "producer"],
            registry=r,
        )
        self.bytes = Counter("archiver_archived_bytes", "Bytes of recordings archived", registry=r)
        self.transfer_seconds = Histogram(
            "archiver_transfer_duration_seconds",
            "Time to fetch, verify and store one recording",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.queue_depth = Gauge(
            "archiver_queue_depth",
            "Recordings waiting for a transfer (pending or not ready)",
            registry=r,
        )
        self.in_flight = Gauge("archiver_transfers_in_flight", "Transfers under way", registry=r)
        self.lag = Gauge(
            "archiver_lag_seconds",
            "Age of the oldest recording not yet archived (0 when none)",
            registry=r,
        )
        # Availability of what the run depends on, and transfers about to time out:
        # what the alert rules (deploy/) read.
        self.storage_available = Gauge(
            "archiver_storage_available",
            "1 while the storage's last readiness probe succeeded, else 0",
            registry=r,
        )
        self.state_available = Gauge(
            "archiver_state_available",
            "1 while the state store's last operation succeeded, else 0",
            registry=r,
        )
        self.transfers_near_deadline = Gauge(
            "archiver_transfers_near_deadline",
            "Transfers in flight for more than 80% of ARCHIVER_TRANSFER__DEADLINE",
            registry=r,
        )
        self.last_poll = Gauge(
            "archiver_last_successful_poll_timestamp_seconds",
            "Unix time of the last poll of the source that completed",
            registry=r,
        )

        self.poll_seconds = Histogram(
            "archiver_poll_duration_seconds",
            "Time one poll of the source took",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.poll_requests = Histogram(
            "archiver_poll_list_requests",
            "Requests to the source's listing (counts and pages) one poll made",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=r,
        )

        self.found_late = Counter(
            "archiver_cdrs_found_late",
            "New CDRs the sweep found beyond the polls' lookback (or the declared longest call)",
            ["beyond"],
            registry=r,
        )
        self.sweep_findings = Counter(
            "archiver_sweep_findings",
            "What the sweep found that the polls had not: new CDRs, URLs that appeared,"
            " recordings queued again after a lookup by id",
            ["kind"],
            registry=r,
        )

        self.leases_held = Gauge(
            "archiver_leases_held",
            "Recordings this process holds in flight under a lease (at its last heartbeat)",
            registry=r,
        )
        self.leases_taken_over = Counter(
            "archiver_leases_taken_over",
            "Recordings in flight by a run that died or stopped beating, queued again here",
            registry=r,
        )
        self.leader = Gauge(
            "archiver_leader",
            "1 while this process is the leader (it polls, sweeps and writes the manifest)",
            registry=r,
        )
        self.leadership_taken_over = Counter(
            "archiver_leadership_taken_over",
            "Times this process became the leader in place of one that died or stopped renewing",
            registry=r,
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
