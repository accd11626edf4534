"""charlm on a text file trains with precision auto (bf16 where the CPU has it natively); the course's
sentence keeps fp32, and --precision still wins."""

from zoo.loop.plan import plan
from zoo.loop.training import autocast_dtype


def test_a_text_file_gets_precision_auto(tmp_path, long_text):
    assert plan("lstm", "charlm", [f"task.text={long_text}"]).train_config.precision == "auto"
    assert plan("lstm", "charlm").train_config.precision == "fp32"  # the course's sentence: as before
    assert plan("lstm", "charlm", [f"task.text={long_text}", "train.precision=fp32"]).train_config.precision == "fp32"


def test_auto_is_fp32_off_the_cpu_and_bf16_only_where_native():
    import torch

    from zoo.loop import training

    assert autocast_dtype("auto", torch.device("cuda")) is None
    assert autocast_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if training.cpu_has_native_bf16() else None)
