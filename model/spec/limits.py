"""The bounds on replica and worker counts, apart from the schema: repairs stay within them
and import them without loading pydantic (the verifier starts without the spec loader)."""

# Instances are materialised at load time (one zone entry each): without a bound, a typo such as
# 'replicas: 10000000000' made the loader allocate until the machine ran out of memory.
MAX_REPLICAS = 10_000
# Every count has a bound (see ``fields``); workers are sized by capacity's repair.
MAX_WORKERS = 10_000

__all__ = ["MAX_REPLICAS", "MAX_WORKERS"]
