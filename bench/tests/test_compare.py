"""--compare names a server variant: an optional label, its kind, and what it changes."""

from bench.run import PREVIOUS_PATH, parse_args, parse_compare


def test_the_default_comparison_is_the_previous_path_on_gunicorn():
    args = parse_args([])
    spec = parse_compare(PREVIOUS_PATH, args=args)
    assert (spec.label, spec.kind, spec.env) == ("previous", "gunicorn", (("ADMISSION_GROUP_COMMIT", "0"),))


def test_a_variant_sets_its_own_worker_count_and_settings():
    args = parse_args(["--workers", "2"])
    spec = parse_compare("uvicorn:WORKERS=4,ADMISSION_DEADLINE_MS=500", args=args)
    assert (spec.kind, spec.workers, spec.env) == ("uvicorn", 4, (("ADMISSION_DEADLINE_MS", "500"),))
    assert spec.label == "uvicorn+WORKERS=4,ADMISSION_DEADLINE_MS=500"
    assert parse_compare("granian", args=args).kind == "granian"
