"""What the bench scripts print about the machine a figure comes from (`from machine import cpu, flags`)."""


def cpu() -> str:
    """The CPU's model name from /proc/cpuinfo ("?" where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        return "?"


def flags() -> str:
    """/proc/cpuinfo as one string, for `"avx512_bf16" in flags()` ("" where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""
