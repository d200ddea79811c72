"""Prometheus metrics for the server (one registry per app, so tests stay independent)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from freehold.engine.batched import StepStats

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("freehold_requests", "HTTP requests", ["api", "path", "status"], registry=r)
        self.tokens = Counter("freehold_tokens", "Tokens processed", ["direction"], registry=r)
        self.queue_depth = Gauge("freehold_queue_depth", "Requests waiting for a decoding slot", registry=r)
        self.active = Gauge("freehold_active_sequences", "Sequences being decoded", registry=r)
        self.models_loaded = Gauge("freehold_models_loaded", "Models loaded in memory", registry=r)
        self.batch_size = Histogram("freehold_batch_size", "Sequences decoded together per llama_decode",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.step_seconds = Histogram("freehold_decode_step_seconds", "Time per batched decode step",
                                      buckets=_LATENCY, registry=r)
        self.ttft = Histogram("freehold_time_to_first_token_seconds", "Time to first token", buckets=_LATENCY,
                              registry=r)
        # Guardrail decisions (freehold.guardrails): rail = pii | deny | safety | topic; action =
        # input_replaced | input_blocked | input_passed | output_redacted | output_stopped. No content.
        self.guardrail = Counter("freehold_guardrail_decisions", "Guardrail decisions", ["rail", "action"],
                                 registry=r)
        self.itl = Histogram("freehold_inter_token_latency_seconds", "Time between output tokens",
                             buckets=_LATENCY, registry=r)

    def on_step(self, stats: StepStats) -> None:
        self.batch_size.observe(stats.batch_sequences)
        self.step_seconds.observe(stats.seconds)
