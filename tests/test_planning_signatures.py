"""stored_signature: Snakemake reads a per-job function's arguments from the stored signature, unchanged."""

import inspect

from pipeline_steps.workflow_config import stored_signature


def test_the_function_is_returned_itself_and_still_computes_the_same():
    def slice_of(wildcards, input=None):
        return (wildcards, input)

    assert stored_signature(slice_of) is slice_of
    assert slice_of("w", input="i") == ("w", "i")


def test_inspect_signature_returns_the_stored_signature_with_the_same_parameters():
    def slice_of(wildcards, input, *, threads=1, **kwargs):
        return wildcards

    expected = inspect.signature(slice_of)
    stored_signature(slice_of)
    assert inspect.signature(slice_of) is slice_of.__signature__
    assert inspect.signature(slice_of) == expected
    assert [p.kind for p in inspect.signature(slice_of).parameters.values()] == [p.kind for p in expected.parameters.values()]


def test_a_lambda_keeps_its_single_wildcards_argument():
    tree = stored_signature(lambda wc: wc)
    assert list(inspect.signature(tree).parameters) == ["wc"]
