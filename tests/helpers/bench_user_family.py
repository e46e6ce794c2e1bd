"""A user's own instance family, registered for a suite's ``imports`` (tests/test_bench_suites)."""

from netopt.bench.families import family


@family("user_chain", {"width": 6, "count": 1, "seed": 0})
def make(params, index, name, workdir):
    from netopt.instances import mlp_instance

    return mlp_instance([3, int(params["width"]), 2], int(params["seed"]) + index, name=name)
