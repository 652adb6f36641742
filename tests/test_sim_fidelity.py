"""Fidelity: the simulator against queueing theory and against ciw.

Each test runs independent replications (one seed each) and checks that the theoretical value
lies in the 99.9 % confidence interval of the replications' mean: never one run eyeballed.
"""

from __future__ import annotations

import math
from pathlib import Path

import ciw
import pytest
from simhelp import assert_within, interval, replicate

from faultmesh import model

SPECS = Path(__file__).resolve().parent.parent / "specs"
SEEDS = range(24)


def mean_latency(run) -> float:  # type: ignore[no-untyped-def]
    return run.entry()["latency_s"]["mean"]


def p99_latency(run) -> float:  # type: ignore[no-untyped-def]
    return run.entry()["latency_s"]["p99"]


# --- M/M/1 -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mm1_runs() -> list:  # type: ignore[type-arg]
    system = model.load(SPECS / "mm1.yaml")
    return replicate(system, SEEDS, lambda run: run, duration=2500, warmup=50)


def test_mm1_mean_sojourn(mm1_runs: list) -> None:  # type: ignore[type-arg]
    lam, mu = 8.0, 10.0
    assert_within([mean_latency(r) for r in mm1_runs], 1 / (mu - lam), "M/M/1 mean sojourn")


def test_mm1_p99_sojourn(mm1_runs: list) -> None:  # type: ignore[type-arg]
    # The sojourn time of M/M/1 (FIFO) is exponential with rate mu - lambda.
    lam, mu = 8.0, 10.0
    theory = math.log(100) / (mu - lam)
    assert_within([p99_latency(r) for r in mm1_runs], theory, "M/M/1 p99 sojourn",
                  slack=0.005)


def test_mm1_utilization_and_wait(mm1_runs: list) -> None:  # type: ignore[type-arg]
    lam, mu = 8.0, 10.0
    rho = lam / mu
    services = [r.summary["services"]["server"] for r in mm1_runs]
    assert_within([s["utilization"] for s in services], rho, "M/M/1 utilization")
    assert_within([s["wait_s"] for s in services], rho / (mu - lam), "M/M/1 mean wait")
    assert_within([s["queued"] for s in services], rho, "M/M/1 P(wait)")


# --- M/M/c -------------------------------------------------------------------------------------


def erlang_c(c: int, offered: float) -> float:
    """Probability that an arrival waits in M/M/c with ``offered`` Erlangs."""
    rho = offered / c
    top = offered**c / math.factorial(c) / (1 - rho)
    return top / (sum(offered**k / math.factorial(k) for k in range(c)) + top)


def test_mmc_erlang_c() -> None:
    system = model.load(SPECS / "mmc.yaml")
    c, lam, mu = 3, 2.4, 1.0
    waits = erlang_c(c, lam / mu)
    wq = waits / (c * mu - lam)
    runs = replicate(system, SEEDS, lambda run: run, duration=4000, warmup=100)
    services = [r.summary["services"]["server"] for r in runs]
    assert_within([s["queued"] for s in services], waits, "M/M/c P(wait) (Erlang C)")
    assert_within([s["wait_s"] for s in services], wq, "M/M/c mean wait")
    assert_within([mean_latency(r) for r in runs], wq + 1 / mu, "M/M/c mean sojourn")


# --- tandem ------------------------------------------------------------------------------------


def hypoexponential_quantile(rates: list[float], q: float) -> float:
    """Quantile of a sum of independent exponentials with distinct ``rates``."""

    def cdf(t: float) -> float:
        total = 0.0
        for i, a in enumerate(rates):
            weight = math.prod(b / (b - a) for j, b in enumerate(rates) if j != i)
            total += weight * math.exp(-a * t)
        return 1 - total

    low, high = 0.0, 1.0
    while cdf(high) < q:
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if cdf(middle) < q else (low, middle)
    return (low + high) / 2


def test_chain_is_a_tandem_of_mm1_queues() -> None:
    # Burke and Reich: each station is M/M/1 with the same arrival rate, and a request's
    # sojourn times at the stations are independent: the end-to-end sojourn is their sum.
    system = model.load(SPECS / "chain.yaml")
    lam, rates = 0.8, [2.0, 1.5, 1.25]
    net = [mu - lam for mu in rates]
    runs = replicate(system, SEEDS, lambda run: run, duration=6000, warmup=200)
    assert_within([mean_latency(r) for r in runs], sum(1 / r for r in net),
                  "tandem mean sojourn")
    assert_within([p99_latency(r) for r in runs], hypoexponential_quantile(net, 0.99),
                  "tandem p99 sojourn", slack=0.005)
    for name, mu in zip("abc", rates, strict=True):
        assert_within([r.summary["services"][name]["utilization"] for r in runs], lam / mu,
                      f"utilization of {name}")


# --- ciw ---------------------------------------------------------------------------------------


def test_mm1_agrees_with_ciw() -> None:
    lam, mu, horizon, warmup = 8.0, 10.0, 1200.0, 50.0
    seeds = range(12)

    def ciw_mean(seed: int) -> float:
        network = ciw.create_network(arrival_distributions=[ciw.dists.Exponential(lam)],
                                     service_distributions=[ciw.dists.Exponential(mu)],
                                     number_of_servers=[1])
        ciw.seed(seed)
        simulation = ciw.Simulation(network)
        simulation.simulate_until_max_time(horizon)
        waits = [r.exit_date - r.arrival_date for r in simulation.get_all_records()
                 if r.arrival_date >= warmup]
        return sum(waits) / len(waits)

    theirs = [ciw_mean(seed) for seed in seeds]
    ours = replicate(model.load(SPECS / "mm1.yaml"), seeds, mean_latency, duration=horizon,
                     warmup=warmup)
    mean_ours, low_ours, high_ours = interval(ours)
    mean_theirs, low_theirs, high_theirs = interval(theirs)
    # Two independent estimates of the same mean: their 99.9 % intervals overlap.
    assert low_ours <= high_theirs and low_theirs <= high_ours, (ours, theirs)
    assert abs(mean_ours - mean_theirs) < 0.1 * (mean_ours + mean_theirs) / 2
