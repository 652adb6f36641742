"""The spec of DESIGN.md's "The spec (YAML)" section, made complete: every called service is
defined (frontend.home calls cart.GetCart; redis, pricing, a, b and audit exist), so it loads.

Shared by the spec and graph tests; each writes it to its own tmp_path.
"""

SHOP_YAML = """\
system: shop
zones: [a, b, c]                       # optional; default one zone
network:                               # C: the communication substrate
  latency: {same_zone: 0.5ms, cross_zone: 2ms}   # distributions; default 0
  loss: 0                              # probability a message is lost (-> caller timeout)
discovery:                             # D
  mode: client                         # client: callers use a cached view | server: always fresh
  heartbeat: 10s
  ttl: 30s                             # registry drops an instance this long after its last beat
  refresh: 30s                         # client cache refresh period
orchestration:                         # O defaults (a service may override)
  restart: {delay: 5s}                 # crashed instance restarts after delay; `never` disables
  readiness: {period: 10s, failures: 3}
defaults:
  call: {timeout: 1s, retries: 0, backoff: {base: 25ms, cap: 250ms, jitter: full}}
  load_balancer: round_robin
  circuit_breaker: none                # or a breaker, below
services:
  frontend:
    replicas: 3
    endpoints:
      home:
        service_time: {lognormal: {mean: 5ms, p99: 40ms}}
        calls: [cart.GetCart]
  cart:
    replicas: 2                        # placed round-robin over zones, or `placement: {a: 1, b: 1}`
    workers: 4                         # service-time slots (CPU) per instance
    concurrency: 64                    # max in-flight requests per instance
    queue: 128                         # max requests waiting for a worker; beyond: rejected
    depends_on: [redis]                # O: must be ready before this starts
    load_balancer: round_robin         # how callers pick among this service's instances
    endpoints:
      GetCart:
        signature: {input: UserId, output: Cart, errors: [Unavailable]}
        service_time: {exponential: 2ms}
        calls:                         # executed in order; each item: "svc.endpoint" or a mapping
          - redis.HGET
          - {call: pricing.Quote, timeout: 200ms, retries: 2, optional: true,
             circuit_breaker: {failure_rate: 50%, window: 20, min_calls: 10, open_for: 30s,
                               half_open_calls: 3}}
          - parallel: [a.X, b.Y]       # fan out, join when all finish
          - {call: audit.Log, async: true, probability: 0.1}
  redis:
    placement: {a: 1, b: 1}
    endpoints:
      HGET: {service_time: {uniform: [0.1ms, 0.5ms]}}
  pricing:
    endpoints:
      Quote: {service_time: {normal: {mean: 3ms, sd: 1ms}}}
  a:
    endpoints:
      X: {service_time: 1ms}
  b:
    endpoints:
      Y: {service_time: {empirical: [1ms, 2ms, 5ms]}}
  audit:
    restart: never
    endpoints:
      Log: {service_time: 0.5ms}
workload:
  - {entry: frontend.home, rate: 200/s, arrivals: poisson}   # poisson | constant
properties:                            # checked by `verify` (static) and/or by monitors (dynamic)
  - survives: {failures: 1, of: [instance, zone]}
  - capacity: {failures: 1}
  - timeouts_nest: {}
  - retry_amplification: {max: 8}
  - availability: {entry: frontend.home, at_least: 99.9%}
  - latency: {entry: frontend.home, p99: 250ms}
scenarios:
  zone-a-outage:
    duration: 10m
    warmup: 1m
    faults:
      - {at: 2m, for: 3m, crash: "zone:a"}
      - {at: 6m, for: 1m, latency: {target: cart, add: 200ms}}
      - {at: 8m, for: 30s, errors: {target: "pricing.Quote", rate: 50%}}
      - {at: 9m, for: 30s, partition: {between: [cart, redis]}}
"""
